"""MemoryCache at scale: stale-if-error, the rate-limit backoff shared by clients, statistics.

Against FakeHub over HTTP, with a fake monotonic clock for the cache (the Hub's answers are
real; only the cache's notion of time moves by hand).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from manual_clock import ManualClock

from hub_auth import Err, ErrorKind, HubAuth, Ok, Result, UserInfo
from hub_auth._cache.memory import MemoryCache
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
NEW = make_token("grace")


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
    hub.add_token(NEW, FakeUser(name="grace-hopper"))
    return hub


@pytest.fixture
async def client(hub: FakeHub, hf_home: Path) -> AsyncIterator[Callable[[MemoryCache], HubAuth]]:
    made: list[HubAuth] = []

    def make(cache: MemoryCache) -> HubAuth:
        auth = HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        await auth.aclose()


def username(result: Result[UserInfo]) -> str:
    assert isinstance(result, Ok), result
    return result.value.username


def error_kind(result: Result[UserInfo]) -> ErrorKind:
    assert isinstance(result, Err), result
    return result.error.kind


def stale_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stale-if-error" in r.getMessage()]


FAULTS: dict[str, Callable[[FakeHub], None]] = {
    "500": lambda hub: hub.fail_next(500),
    "503": lambda hub: hub.fail_next(503),
    "network": lambda hub: hub.drop_next(2),
    "429": lambda hub: hub.rate_limit_next(retry_after=30),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_stale_answer_stands_in_while_the_hub_cannot_answer(
    hub: FakeHub,
    clock: ManualClock,
    client: Callable[[MemoryCache], HubAuth],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="hub_auth")
    cache = MemoryCache(ttl=60.0, stale_ttl=300.0, clock=clock)
    auth = client(cache)
    assert username(await auth.whoami(TOKEN)) == "ada-lovelace"
    clock.advance(61)
    FAULTS[fault](hub)
    before = hub.request_count
    assert username(await auth.whoami(TOKEN)) == "ada-lovelace"
    assert hub.request_count > before  # the Hub was asked first: stale is a fallback only
    stats = cache.stats()
    assert (stats.stale, stats.hits, stats.misses) == (1, 0, 2)
    assert len(stale_warnings(caplog)) == 1
    assert TOKEN not in caplog.text


async def test_stale_is_not_served_while_the_hub_answers(
    hub: FakeHub, clock: ManualClock, client: Callable[[MemoryCache], HubAuth]
) -> None:
    cache = MemoryCache(ttl=60.0, stale_ttl=300.0, clock=clock)
    auth = client(cache)
    await auth.whoami(TOKEN)
    hub.add_token(TOKEN, FakeUser(name="ada-renamed"))
    clock.advance(61)
    assert username(await auth.whoami(TOKEN)) == "ada-renamed"
    assert cache.stats().stale == 0
    assert cache.stats().hub_requests == 2


async def test_stale_ends_after_stale_ttl_and_is_off_by_default(
    hub: FakeHub, clock: ManualClock, client: Callable[[MemoryCache], HubAuth]
) -> None:
    stale = MemoryCache(ttl=60.0, stale_ttl=300.0, clock=clock)
    plain = MemoryCache(ttl=60.0, clock=clock)
    with_stale, without = client(stale), client(plain)
    await with_stale.whoami(TOKEN)
    await without.whoami(TOKEN)
    clock.advance(61)
    hub.fail_next(500, count=2)
    assert username(await with_stale.whoami(TOKEN)) == "ada-lovelace"
    assert error_kind(await without.whoami(TOKEN)) is ErrorKind.SERVER_ERROR
    clock.advance(300)  # 361 s after the answer: past ttl + stale_ttl
    hub.fail_next(500)
    assert error_kind(await with_stale.whoami(TOKEN)) is ErrorKind.SERVER_ERROR
    assert stale.stats().stale == 1


@pytest.mark.parametrize("verdict", ["revoke", "forbid"])
async def test_never_stale_after_the_hub_refused_the_token(
    hub: FakeHub,
    clock: ManualClock,
    client: Callable[[MemoryCache], HubAuth],
    verdict: str,
) -> None:
    cache = MemoryCache(ttl=60.0, stale_ttl=300.0, negative_ttl=10.0, clock=clock)
    auth = client(cache)
    await auth.whoami(TOKEN)
    getattr(hub, verdict)(TOKEN)
    clock.advance(61)
    expected = ErrorKind.UNAUTHORIZED if verdict == "revoke" else ErrorKind.FORBIDDEN
    assert error_kind(await auth.whoami(TOKEN)) is expected
    clock.advance(11)  # past negative_ttl: the Hub is asked again, and is down
    hub.fail_next(500, count=3)
    assert error_kind(await auth.whoami(TOKEN)) is ErrorKind.SERVER_ERROR
    assert cache.stats().stale == 0


async def test_stale_never_outlives_the_token(
    hub: FakeHub, clock: ManualClock, client: Callable[[MemoryCache], HubAuth]
) -> None:
    # A token the Hub says expires in 90 s: stale for 300 s would outlive it.
    expires = datetime.now(UTC) + timedelta(seconds=90)
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace", expires_at=expires.isoformat()))
    cache = MemoryCache(ttl=60.0, stale_ttl=300.0, clock=clock)
    auth = client(cache)
    await auth.whoami(TOKEN)
    clock.advance(61)
    hub.fail_next(500)
    assert username(await auth.whoami(TOKEN)) == "ada-lovelace"
    clock.advance(40)  # 101 s: the token has expired
    hub.fail_next(500)
    assert error_kind(await auth.whoami(TOKEN)) is ErrorKind.SERVER_ERROR


async def test_a_429_stops_every_client_of_the_cache_until_the_reset(
    hub: FakeHub,
    clock: ManualClock,
    client: Callable[[MemoryCache], HubAuth],
) -> None:
    cache = MemoryCache(ttl=60.0, stale_ttl=300.0, clock=clock)
    first, second = client(cache), client(cache)  # two HubClients, one cache
    await first.whoami(TOKEN)
    clock.advance(61)
    hub.rate_limit_next(retry_after=30)
    assert username(await first.whoami(TOKEN)) == "ada-lovelace"  # 429, stale stands in
    asked = hub.request_count
    # The other client has no backoff of its own; the cache's stops it.
    result = await second.whoami(NEW)
    assert error_kind(result) is ErrorKind.RATE_LIMITED
    assert isinstance(result, Err) and result.error.retry_after is not None
    assert 0 < result.error.retry_after <= 30
    assert username(await second.whoami(TOKEN)) == "ada-lovelace"  # stale, no request
    assert hub.request_count == asked
    stats = cache.stats()
    assert (stats.rate_limited, stats.backoff_seconds, stats.stale) == (2, 30.0, 2)
    clock.advance(31)
    assert username(await second.whoami(NEW)) == "grace-hopper"
    assert hub.request_count == asked + 1
    assert cache.stats() == cache.stats()  # a plain snapshot, equal while nothing happens


async def test_an_exhausted_quota_stops_every_client_of_the_cache(
    hf_home: Path, clock: ManualClock
) -> None:
    async with FakeHub(rate_limit=1, rate_limit_window=300) as hub:
        hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
        hub.add_token(NEW, FakeUser(name="grace-hopper"))
        cache = MemoryCache(ttl=60.0, clock=clock)
        async with (
            HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False) as first,
            HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False) as second,
        ):
            assert username(await first.whoami(TOKEN)) == "ada-lovelace"  # r=0;t=300
            result = await second.whoami(NEW)
            assert error_kind(result) is ErrorKind.RATE_LIMITED
            assert hub.request_count == 1
            assert cache.stats().backoff_seconds > 290
