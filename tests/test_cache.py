"""MemoryCache: keys, TTL, LRU, negative caching, single-flight, cancellation, invalidation."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import inspect
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from manual_clock import ManualClock

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, Ok, Result, UserInfo
from hub_auth._cache import CacheStats
from hub_auth._cache.flight import SingleFlight
from hub_auth._cache.memory import MemoryCache
from hub_auth._cache.policy import cache_lifetime, token_key
from hub_auth._cache.redis import RedisCache
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
OTHER = make_token("charles")
KEY = b"7Rk2pW9xQz4LmN8vB3cT6yH1sD5fG0aJ"
HUB = "https://hub.example"


def user(name: str = "ada", **fields: object) -> UserInfo:
    return UserInfo.model_validate(FakeUser(name=name, **fields).body())  # type: ignore[arg-type]


class Loader:
    """A ``load`` that counts calls and answers from a table (Ok(user) by default)."""

    def __init__(self, answers: dict[str, Result[UserInfo]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, token: str) -> Result[UserInfo]:
        self.calls.append(token)
        if self.gate is not None:
            await self.gate.wait()
        return self.answers.get(token, Ok(user(name=f"user-{len(token)}")))


def err(kind: ErrorKind, status: int | None = None) -> Err[HubAuthError]:
    return Err(HubAuthError(kind, f"{kind.value} happened", status=status))


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace", token_name="ada-laptop"))
    hub.add_token(OTHER, FakeUser(name="charles-b", token_name="charles-desk"))
    return hub


@pytest.fixture
async def cached_auth(hub: FakeHub, hf_home: Path) -> AsyncIterator[HubAuth]:
    async with HubAuth(endpoint=hub.url, cache=MemoryCache(), max_attempts=1) as auth:
        yield auth


# -- construction and keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": -1.0}, ValueError),
        ({"ttl": "60"}, TypeError),
        ({"max_entries": 0}, ValueError),
        ({"max_entries": 1.5}, ValueError),
        ({"max_entries": True}, ValueError),
        ({"negative_ttl": -1}, ValueError),
        ({"key": b"short"}, ValueError),
        ({"key": b"k" * 32}, ValueError),
        ({"key": "password" * 4}, ValueError),
        ({"key": 12345}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        MemoryCache(**kwargs)  # type: ignore[arg-type]


async def test_keys_are_a_mac_of_the_token_never_the_token() -> None:
    cache = MemoryCache(key=KEY)
    await cache.fetch(TOKEN, Loader(), endpoint=HUB)
    (stored,) = cache._entries
    # Keyed BLAKE2b (a MAC by design; a third of HMAC's cost on the hit path), checked
    # against hashlib directly, with the endpoint's length first.
    scope = b"%d:%s" % (len(HUB), HUB.encode())
    assert stored == hashlib.blake2b(scope + TOKEN.encode(), key=KEY, digest_size=32).digest()
    assert TOKEN.encode() not in stored
    assert TOKEN not in repr(cache)


def test_shared_keys_are_standard_hmac_sha256_scoped_by_endpoint() -> None:
    """Redis keys, which replicas must agree on, checked against ``hmac`` directly: any
    secret length, the endpoint's length first."""
    other = "https://hub.example.org"
    for secret in (KEY, secrets.token_bytes(200)):  # 200: longer than SHA-256's block
        for endpoint in (HUB, other):
            scope = b"%d:%s" % (len(endpoint), endpoint.encode())
            expected = hmac.new(secret, scope + TOKEN.encode(), hashlib.sha256).hexdigest()
            assert token_key(secret, TOKEN, endpoint) == expected
    assert token_key(KEY, TOKEN, HUB) != token_key(KEY, TOKEN, other)
    # The same token under another secret gives another key.
    assert token_key(secrets.token_bytes(32), TOKEN, HUB) != token_key(KEY, TOKEN, HUB)


async def test_random_key_per_cache() -> None:
    first, second = MemoryCache(), MemoryCache()
    for cache in (first, second):
        await cache.fetch(TOKEN, Loader(), endpoint=HUB)
    assert list(first._entries) != list(second._entries)


# -- TTL, LRU, what is cached ----------------------------------------------------------------


async def test_hit_within_ttl_and_reload_after() -> None:
    clock = ManualClock()
    cache = MemoryCache(ttl=10.0, clock=clock)
    load = Loader()
    first = await cache.fetch(TOKEN, load, endpoint=HUB)
    clock.advance(9.9)
    assert await cache.fetch(TOKEN, load, endpoint=HUB) is first
    assert load.calls == [TOKEN]
    clock.advance(0.2)
    assert await cache.fetch(TOKEN, load, endpoint=HUB) == first
    assert load.calls == [TOKEN, TOKEN]
    assert cache.stats() == CacheStats(hits=1, misses=2, hub_requests=2, entries=1)


def test_default_clocks() -> None:
    """Monotonic in one process; unix seconds for Redis, whose expiry stamps every replica
    compares with its own clock."""
    assert inspect.signature(MemoryCache).parameters["clock"].default is time.monotonic
    assert inspect.signature(RedisCache).parameters["clock"].default is time.time


async def test_lru_bound_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    load = Loader()
    a, b, c = make_token("a"), make_token("b"), make_token("c")
    await cache.fetch(a, load, endpoint=HUB)
    await cache.fetch(b, load, endpoint=HUB)
    await cache.fetch(a, load, endpoint=HUB)  # a is now the most recent
    await cache.fetch(c, load, endpoint=HUB)  # evicts b
    assert len(cache) == 2
    await cache.fetch(a, load, endpoint=HUB)
    await cache.fetch(c, load, endpoint=HUB)
    assert load.calls == [a, b, c]
    await cache.fetch(b, load, endpoint=HUB)
    assert load.calls == [a, b, c, b]


async def test_memory_stays_bounded() -> None:
    cache = MemoryCache(max_entries=100)
    load = Loader()
    for index in range(1000):
        await cache.fetch(make_token(f"t{index}"), load, endpoint=HUB)
    assert len(cache) == 100 == cache.stats().entries


async def test_unauthorized_not_cached_by_default() -> None:
    cache = MemoryCache()
    load = Loader({TOKEN: err(ErrorKind.UNAUTHORIZED, 401)})
    for _ in range(3):
        result = await cache.fetch(TOKEN, load, endpoint=HUB)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.UNAUTHORIZED
    assert len(load.calls) == 3
    assert len(cache) == 0


async def test_negative_ttl_caches_unauthorized_for_its_own_time() -> None:
    clock = ManualClock()
    cache = MemoryCache(ttl=60.0, negative_ttl=2.0, clock=clock)
    load = Loader({TOKEN: err(ErrorKind.UNAUTHORIZED, 401)})
    first = await cache.fetch(TOKEN, load, endpoint=HUB)
    clock.advance(1.9)
    assert await cache.fetch(TOKEN, load, endpoint=HUB) == first
    assert len(load.calls) == 1
    clock.advance(0.2)
    await cache.fetch(TOKEN, load, endpoint=HUB)
    assert len(load.calls) == 2


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.FORBIDDEN,
        ErrorKind.RATE_LIMITED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.NETWORK,
        ErrorKind.TIMEOUT,
        ErrorKind.BAD_RESPONSE,
    ],
)
async def test_failures_about_the_hub_are_never_cached(kind: ErrorKind) -> None:
    cache = MemoryCache(negative_ttl=60.0)
    load = Loader({TOKEN: err(kind)})
    await cache.fetch(TOKEN, load, endpoint=HUB)
    await cache.fetch(TOKEN, load, endpoint=HUB)
    assert len(load.calls) == 2
    assert len(cache) == 0


async def test_entry_never_outlives_the_tokens_expiry() -> None:
    clock = ManualClock()
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    expiring, expired = make_token("soon"), make_token("past")
    load = Loader({expiring: Ok(user(expires_at=soon)), expired: Ok(user(expires_at=past))})
    cache = MemoryCache(ttl=60.0, clock=clock)
    await cache.fetch(expired, load, endpoint=HUB)
    await cache.fetch(expired, load, endpoint=HUB)
    assert load.calls == [expired, expired]
    await cache.fetch(expiring, load, endpoint=HUB)
    await cache.fetch(expiring, load, endpoint=HUB)
    clock.advance(28)  # inside the token's 30 s
    await cache.fetch(expiring, load, endpoint=HUB)
    assert load.calls.count(expiring) == 1
    clock.advance(3)  # past the token's expiry, long before ttl
    await cache.fetch(expiring, load, endpoint=HUB)
    assert load.calls.count(expiring) == 2


def test_cache_lifetime_rules() -> None:
    assert cache_lifetime(Ok(user()), 60.0, 5.0, now=time.time()) == 60.0
    assert cache_lifetime(err(ErrorKind.UNAUTHORIZED), 60.0, 5.0, now=time.time()) == 5.0
    assert cache_lifetime(err(ErrorKind.INVALID_TOKEN), 60.0, 5.0, now=time.time()) == 0.0
    assert cache_lifetime(err(ErrorKind.FORBIDDEN), 60.0, 5.0, now=time.time()) == 0.0


async def test_clear_and_stats() -> None:
    cache = MemoryCache()
    load = Loader()
    await cache.fetch(TOKEN, load, endpoint=HUB)
    await cache.fetch(TOKEN, load, endpoint=HUB)
    assert cache.stats() == CacheStats(hits=1, misses=1, hub_requests=1, entries=1)
    cache.clear()
    assert len(cache) == 0
    await cache.fetch(TOKEN, load, endpoint=HUB)
    assert cache.stats() == CacheStats(hits=1, misses=2, hub_requests=2, entries=1)


async def test_hits_log_nothing_and_never_load(caplog: pytest.LogCaptureFixture) -> None:
    """Speed is measured in benchmarks/ (case 5), not asserted here."""
    cache = MemoryCache()
    load = Loader()
    await cache.fetch(TOKEN, load, endpoint=HUB)
    caplog.set_level(logging.DEBUG)
    count = 2_000
    for _ in range(count):
        await cache.fetch(TOKEN, load, endpoint=HUB)
    assert [r for r in caplog.records if r.name.startswith("hub_auth")] == []
    assert cache.stats().hits == count
    assert cache.stats().hub_requests == 1


# -- single-flight and cancellation ----------------------------------------------------------


async def test_thousand_concurrent_whoami_reach_the_hub_once(
    hub: FakeHub, cached_auth: HubAuth
) -> None:
    hub.delay_next(0.2)
    results = await asyncio.gather(*(cached_auth.whoami(TOKEN) for _ in range(1000)))
    assert hub.request_count == 1
    assert {result.unwrap().username for result in results} == {"ada-lovelace"}
    assert (await cached_auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
    assert hub.request_count == 1


async def test_different_tokens_do_not_share_a_load(hub: FakeHub, cached_auth: HubAuth) -> None:
    first, second = await asyncio.gather(cached_auth.whoami(TOKEN), cached_auth.whoami(OTHER))
    assert first.unwrap().username == "ada-lovelace"
    assert second.unwrap().username == "charles-b"
    assert hub.request_count == 2


async def test_cancelling_one_waiter_leaves_the_others(hub: FakeHub, cached_auth: HubAuth) -> None:
    hub.delay_next(0.3)
    tasks = [asyncio.create_task(cached_auth.whoami(TOKEN)) for _ in range(5)]
    await asyncio.sleep(0.1)  # every task is waiting on the one request
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, Ok) and r.value.username == "ada-lovelace" for r in results[1:])
    assert hub.request_count == 1


async def test_cancelling_the_first_caller_does_not_cancel_the_load() -> None:
    cache = MemoryCache()
    load = Loader()
    load.gate = asyncio.Event()
    first = asyncio.create_task(cache.fetch(TOKEN, load, endpoint=HUB))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.fetch(TOKEN, load, endpoint=HUB))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    load.gate.set()
    assert isinstance(await second, Ok)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert load.calls == [TOKEN]


async def test_load_finishes_and_is_stored_when_every_waiter_is_cancelled(
    hub: FakeHub, cached_auth: HubAuth
) -> None:
    hub.delay_next(0.2)
    tasks = [asyncio.create_task(cached_auth.whoami(TOKEN)) for _ in range(3)]
    await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.3)  # the request completes in the background
    assert (await cached_auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
    assert hub.request_count == 1


async def test_a_load_that_raises_reaches_every_waiter_and_is_not_cached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = MemoryCache()
    calls = 0

    async def broken(token: str) -> Result[UserInfo]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("bug in load")

    outcomes = await asyncio.gather(
        *(cache.fetch(TOKEN, broken, endpoint=HUB) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert calls == 1
    assert len(cache) == 0
    # An abandoned failing load is not reported as "exception never retrieved".
    task = asyncio.create_task(cache.fetch(TOKEN, broken, endpoint=HUB))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0.05)
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_invalidate_during_a_load_keeps_the_stale_answer_out() -> None:
    cache = MemoryCache()
    load = Loader()
    load.gate = asyncio.Event()
    waiting = asyncio.create_task(cache.fetch(TOKEN, load, endpoint=HUB))
    await asyncio.sleep(0.01)
    await cache.invalidate(TOKEN, endpoint=HUB)
    load.gate.set()
    assert isinstance(await waiting, Ok)  # the waiter still gets its answer
    assert len(cache) == 0
    await cache.fetch(TOKEN, load, endpoint=HUB)
    assert len(load.calls) == 2


def test_shared_by_event_loops_in_several_threads() -> None:
    """The sync facade runs each call in a new loop, in worker threads, on one cache."""
    cache = MemoryCache()
    calls: list[str] = []
    barrier = threading.Barrier(4)

    async def slow(token: str) -> Result[UserInfo]:
        calls.append(token)
        await asyncio.sleep(0.1)
        return Ok(user())

    results: list[Result[UserInfo]] = []

    def worker() -> None:
        async def run() -> None:
            barrier.wait()
            results.extend(
                await asyncio.gather(*(cache.fetch(TOKEN, slow, endpoint=HUB) for _ in range(10)))
            )

        asyncio.run(run())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40
    assert all(isinstance(r, Ok) for r in results)
    # One load per loop at most (loops cannot await each other's tasks), never one per call.
    assert 1 <= len(calls) <= 4
    assert asyncio.run(cache.fetch(TOKEN, slow, endpoint=HUB)) == results[0]
    assert len(calls) <= 4


async def test_single_flight_forgets_finished_loads() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def one() -> int:
        return 1

    assert await flight.run("k", one) == 1
    await asyncio.sleep(0)
    assert len(flight) == 0


# -- invalidation through HubAuth -------------------------------------------------------------


async def whoami_count(
    hub: FakeHub, call: Callable[[], Awaitable[Result[UserInfo]]]
) -> tuple[str, int]:
    before = hub.request_count
    result = await call()
    return result.unwrap().username, hub.request_count - before


async def test_set_token_invalidates_the_previous_token(hub: FakeHub, cached_auth: HubAuth) -> None:
    assert await cached_auth.set_token(TOKEN) == Ok(None)
    assert await whoami_count(hub, cached_auth.whoami) == ("ada-lovelace", 1)
    assert await whoami_count(hub, cached_auth.whoami) == ("ada-lovelace", 0)
    assert await cached_auth.set_token(OTHER) == Ok(None)
    assert await whoami_count(hub, cached_auth.whoami) == ("charles-b", 1)
    assert await whoami_count(hub, lambda: cached_auth.whoami(TOKEN)) == ("ada-lovelace", 1)


async def test_logout_invalidates_the_stored_token(hub: FakeHub, cached_auth: HubAuth) -> None:
    assert isinstance(await cached_auth.login(TOKEN), Ok)
    assert await whoami_count(hub, cached_auth.whoami) == ("ada-lovelace", 1)
    assert await whoami_count(hub, cached_auth.whoami) == ("ada-lovelace", 0)
    assert isinstance(await cached_auth.logout(), Ok)
    assert await whoami_count(hub, lambda: cached_auth.whoami(TOKEN)) == ("ada-lovelace", 1)


async def test_switch_token_invalidates_the_previous_active_token(
    hub: FakeHub, cached_auth: HubAuth
) -> None:
    assert cached_auth.store is not None
    assert isinstance(await cached_auth.login(TOKEN), Ok)
    assert isinstance(await cached_auth.login(OTHER), Ok)  # active: OTHER
    assert await whoami_count(hub, cached_auth.whoami) == ("charles-b", 1)
    assert await whoami_count(hub, cached_auth.whoami) == ("charles-b", 0)
    assert isinstance(await cached_auth.switch_token("ada-laptop"), Ok)
    assert await whoami_count(hub, cached_auth.whoami) == ("ada-lovelace", 1)
    assert await whoami_count(hub, lambda: cached_auth.whoami(OTHER)) == ("charles-b", 1)


async def test_revoked_token_is_seen_after_ttl_not_before(hub: FakeHub, hf_home: Path) -> None:
    clock = ManualClock()
    async with HubAuth(endpoint=hub.url, cache=MemoryCache(ttl=30.0, clock=clock)) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        hub.revoke(TOKEN)
        assert isinstance(await auth.whoami(TOKEN), Ok)  # still cached: the price of a TTL
        clock.advance(31)
        result = await auth.whoami(TOKEN)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.UNAUTHORIZED
    assert hub.request_count == 2
