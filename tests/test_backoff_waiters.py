"""A replica that waited for another's answer honours the backoff that replica shared.

When the lock holder is rate-limited it stores no answer but shares a backoff; the waiters
must not then all ask the Hub at once (the stampede the shared backoff exists to prevent).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper

from hub_auth import ErrorKind, HubAuthError, RedisCache, Result, UserInfo
from hub_auth._result import Err
from hub_auth.testing import make_token

ENDPOINT = "https://hub.example"


@pytest.fixture
async def clients(redis_server: redis_helper.RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    made = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


def rate_limited_hub(calls: list[str], name: str, delay: float) -> Callable[[str], object]:
    async def load(token: str) -> Result[UserInfo]:
        calls.append(name)
        await asyncio.sleep(delay)
        return Err(
            HubAuthError(ErrorKind.RATE_LIMITED, "429 from the Hub", status=429, retry_after=30.0)
        )

    return load


async def test_a_waiter_does_not_ask_during_the_holders_backoff(
    clients: list[aioredis.Redis],
) -> None:
    secret = secrets.token_bytes(32)
    first, second = (RedisCache(client, secret=secret) for client in clients)
    token = make_token()
    calls: list[str] = []

    holder = asyncio.create_task(
        first.fetch(token, rate_limited_hub(calls, "first", 0.3), endpoint=ENDPOINT)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)  # the first replica holds the lock and is asking
    waited = await second.fetch(token, rate_limited_hub(calls, "second", 0.0), endpoint=ENDPOINT)  # type: ignore[arg-type]
    await holder

    assert calls == ["first"]  # one request reached the Hub
    assert isinstance(waited, Err)
    assert waited.error.kind is ErrorKind.RATE_LIMITED
    assert waited.error.retry_after is not None and 0 < waited.error.retry_after <= 30
