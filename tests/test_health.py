"""HubAuth.health() and the readiness route of docs/observability.md, against FakeHub up, FakeHub
stopped, a rate limit, offline mode, and a real redis-server stopped.

Requests are counted with an aiohttp trace on a session the client borrows: a probe storm
would show there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper

from hub_auth import CacheHealth, ErrorKind, HealthReport, HubAuth, MemoryCache, Ok, RedisCache
from hub_auth.sync import HubAuthSync
from hub_auth.testing import FakeHub, FakeUser, make_token
from tests.markdown_blocks import python_blocks

TOKEN = make_token("health")
OTHER = make_token("health-other")
SECRET = "health-test-secret-" + "0123456789abcdefghijklmnop"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "observability.md"
DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
    hub.add_token(OTHER, FakeUser(name="grace-hopper"))
    return hub


@pytest.fixture
async def session() -> AsyncIterator[tuple[aiohttp.ClientSession, list[str]]]:
    """A session recording the path of every request made through it."""
    paths: list[str] = []

    async def started(_: object, __: object, params: aiohttp.TraceRequestStartParams) -> None:
        paths.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    async with aiohttp.ClientSession(trace_configs=[trace]) as made:
        yield made, paths


@pytest.fixture
def make_auth(
    session: tuple[aiohttp.ClientSession, list[str]], hf_home: Path
) -> Callable[..., HubAuth]:
    def make(endpoint: str, **options: Any) -> HubAuth:
        return HubAuth(endpoint=endpoint, session=session[0], max_attempts=1, **options)

    return make


@pytest.fixture
def paths(session: tuple[aiohttp.ClientSession, list[str]]) -> list[str]:
    return session[1]


def readiness_app(auth: HubAuth) -> Any:
    """The readiness route as docs/observability.md writes it."""
    (block,) = [b for b in python_blocks(DOCS.read_text()) if '@app.get("/ready")' in b.code]
    namespace: dict[str, Any] = {}
    exec(compile(block.code, str(DOCS), "exec"), namespace)  # our own docs
    app = namespace["app"]
    app.state.hub_auth = auth
    return app


async def get_ready(auth: HubAuth) -> httpx.Response:
    transport = httpx.ASGITransport(app=readiness_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get("/ready")


async def test_nothing_heard_yet_asks_the_hub_once(
    hub: FakeHub, make_auth: Callable[..., HubAuth], paths: list[str]
) -> None:
    async with make_auth(hub.url) as auth:
        reports = await asyncio.gather(*(auth.health() for _ in range(20)))
        assert paths == [DISCOVERY]  # one probe for 20 concurrent callers, unauthenticated
        report = reports[0]
        assert isinstance(report, HealthReport)
        assert report.ready
        assert not report.degraded
        assert report.hub_reachable is True
        assert report.last_error is None
        assert report.cache is None
        assert report.hub_heard_at is not None
        assert report.hub_heard_at <= report.checked_at
        # Later probes within max_age reuse what was heard.
        for _ in range(10):
            assert (await auth.health()).hub_reachable is True
        assert paths == [DISCOVERY]
        # Past max_age, asked again.
        assert (await auth.health(max_age=0.0)).ready
        assert paths == [DISCOVERY, DISCOVERY]
        with pytest.raises(AttributeError):
            report.hub_reachable = False  # type: ignore[misc]


async def test_a_busy_client_is_never_probed(
    hub: FakeHub, make_auth: Callable[..., HubAuth], paths: list[str]
) -> None:
    async with make_auth(hub.url, cache=MemoryCache()) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        for _ in range(5):
            report = await auth.health()
        assert paths == ["/api/whoami-v2"]
        assert report.ready
        assert report.cache == CacheHealth(kind="MemoryCache", available=True, set_aside_until=None)
        assert json.loads(json.dumps(report.as_dict()))["cache"]["kind"] == "MemoryCache"


async def test_a_stopped_hub_is_not_ready_and_not_stormed(
    make_auth: Callable[..., HubAuth], paths: list[str]
) -> None:
    hub = FakeHub(tokens={TOKEN: FakeUser(name="ada-lovelace")})
    await hub.start()
    async with make_auth(hub.url) as auth:
        assert (await get_ready(auth)).status_code == 200
        await hub.close()
        assert (await get_ready(auth)).status_code == 200  # what was heard 0 s ago still holds
        report = await auth.health(max_age=0.0)
        assert not report.ready
        assert report.hub_reachable is False
        assert report.last_error is ErrorKind.NETWORK
        probes = len(paths)
        # A failure is asked about again after 5 s at most, not at every probe.
        answers = await asyncio.gather(*(get_ready(auth) for _ in range(10)))
        assert [answer.status_code for answer in answers] == [503] * 10
        assert len(paths) == probes
        body = answers[0].json()
        assert body["ready"] is False
        assert body["hub_reachable"] is False
        assert body["last_error"] == "network"


async def test_a_rate_limit_backoff_is_degraded_not_unready(
    hub: FakeHub, make_auth: Callable[..., HubAuth], paths: list[str]
) -> None:
    async with make_auth(hub.url) as auth:
        hub.rate_limit_next(retry_after=30)
        assert (await auth.whoami(TOKEN)).is_err()
        report = await auth.health(max_age=0.0)  # no probe while backing off
        assert paths == ["/api/whoami-v2"]
        assert report.ready
        assert report.degraded
        assert report.last_error is ErrorKind.RATE_LIMITED
        assert report.backing_off_until is not None
        left = report.backing_off_until - datetime.now(UTC)
        assert timedelta(seconds=25) < left <= timedelta(seconds=30)


async def test_offline_asks_nothing(
    hub: FakeHub,
    make_auth: Callable[..., HubAuth],
    paths: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with make_auth(hub.url) as auth:
        report = await auth.health()
    assert paths == []
    assert report.hub_reachable is None
    assert report.ready


def test_the_sync_facade_reports_too(fake_hub: FakeHub) -> None:
    with HubAuthSync(endpoint=fake_hub.url) as auth:
        report = auth.health()
    assert isinstance(report, HealthReport)
    assert report.ready


async def test_redis_stopped_is_degraded_and_still_ready(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    make_auth: Callable[..., HubAuth],
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_connect_timeout=1.0)
    try:
        cache = RedisCache(client, secret=SECRET, backoff=60.0)
        async with make_auth(hub.url, cache=cache) as auth:
            assert isinstance(await auth.whoami(TOKEN), Ok)
            assert (await auth.health()).cache == CacheHealth(
                kind="RedisCache", available=True, set_aside_until=None
            )
            redis_server.stop()
            assert isinstance(await auth.whoami(OTHER), Ok)  # from the Hub, Redis set aside
            answer = await get_ready(auth)
            assert answer.status_code == 200
            body = answer.json()
            assert body["ready"] is True
            assert body["degraded"] is True
            assert body["cache"]["available"] is False
            set_aside_until = datetime.fromisoformat(body["cache"]["set_aside_until"])
            left = set_aside_until - datetime.now(UTC)
            assert timedelta(seconds=55) < left <= timedelta(seconds=60)
    finally:
        await client.aclose()
