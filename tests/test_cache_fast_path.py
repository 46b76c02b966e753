"""whoami's synchronous cache hit (``MemoryCache.lookup``, ``HubAuth._whoami_from_cache``).

A hit for a token given explicitly is answered without the coroutine chain; these tests pin
that it answers exactly what the slow path would: the same checks, keys, expiry, counters,
negative entries and copies, and that caches without a synchronous lookup keep ``fetch``.
"""

from __future__ import annotations

import gc
import weakref

import fakeredis
import httpx
import pytest
from fastapi import Depends, FastAPI
from manual_clock import ManualClock
from pydantic import SecretStr

from hub_auth import Err, ErrorKind, HubAuth, MemoryCache, Ok, RedisCache, Result, UserInfo
from hub_auth._cache.policy import Loader
from hub_auth.fastapi import HubBearer
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
REVOKED = make_token("revoked")
KEY = b"7Rk2pW9xQz4LmN8vB3cT6yH1sD5fG0aJ"
SECRET = b"Qm7vT2xK9pL4wN8rB3cZ6yH1sD5fG0aJ"


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), with one user."""
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
    return hub


def cached_auth(hub: FakeHub, cache: object, **options: object) -> HubAuth:
    return HubAuth(endpoint=hub.url, cache=cache, read_env=False, **options)  # type: ignore[arg-type]


async def test_lookup_answers_what_fetch_answers_on_a_hit_and_nothing_on_a_miss(
    hub: FakeHub, clock: ManualClock
) -> None:
    cache = MemoryCache(ttl=60.0, clock=clock)
    async with cached_auth(hub, cache) as auth:
        assert cache.lookup(TOKEN, endpoint=hub.url) is None  # a miss counts nothing
        assert cache.stats().misses == 0
        first = await auth.whoami(TOKEN)
        assert isinstance(first, Ok)
        hit = cache.lookup(TOKEN, endpoint=hub.url)
        assert isinstance(hit, Ok) and hit.value is first.value  # immutable: shared as is
        assert cache.lookup(TOKEN, endpoint="https://other.example") is None  # keyed by Hub
        clock.advance(60.0)
        assert cache.lookup(TOKEN, endpoint=hub.url) is None  # expired on the cache's clock
        assert len(cache) == 0  # and gone (no stale window)
    assert cache.stats().hits == 1
    assert cache.stats().misses == 1


async def test_whoami_hits_count_and_expire_as_before(hub: FakeHub, clock: ManualClock) -> None:
    cache = MemoryCache(ttl=60.0, clock=clock)
    async with cached_auth(hub, cache) as auth:
        for _ in range(3):
            result = await auth.whoami(SecretStr(TOKEN))
            assert isinstance(result, Ok) and result.value.username == "ada-lovelace"
        clock.advance(61.0)
        assert isinstance(await auth.whoami(TOKEN), Ok)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.hub_requests) == (2, 2, 2)
    assert hub.request_count == 2


async def test_a_kept_401_is_a_hit_with_an_error_of_its_own(
    hub: FakeHub, clock: ManualClock
) -> None:
    cache = MemoryCache(ttl=60.0, negative_ttl=30.0, clock=clock)
    async with cached_auth(hub, cache, max_attempts=1) as auth:
        first = await auth.whoami(REVOKED)
        second = await auth.whoami(REVOKED)
        third = cache.lookup(REVOKED, endpoint=hub.url)
    assert isinstance(first, Err) and isinstance(second, Err) and isinstance(third, Err)
    assert second.error.kind is ErrorKind.UNAUTHORIZED
    assert len({id(first.error), id(second.error), id(third.error)}) == 3
    assert hub.request_count == 1
    assert cache.stats().hits == 2


async def test_a_malformed_token_is_refused_even_with_a_warm_cache(hub: FakeHub) -> None:
    cache = MemoryCache()
    async with cached_auth(hub, cache) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        result = await auth.whoami(TOKEN + " ")
    assert isinstance(result, Err) and result.error.kind is ErrorKind.INVALID_TOKEN


async def test_offline_answers_nothing_from_the_cache(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = MemoryCache()
    async with cached_auth(hub, cache) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with HubAuth(endpoint=hub.url, cache=cache) as offline:
        result = await offline.whoami(TOKEN)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.OFFLINE


async def test_a_closed_client_refuses_even_a_cached_token(hub: FakeHub) -> None:
    auth = cached_auth(hub, MemoryCache())
    assert isinstance(await auth.whoami(TOKEN), Ok)
    await auth.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await auth.whoami(TOKEN)


async def test_a_cache_whose_fetch_is_overridden_is_always_asked_through_fetch(
    hub: FakeHub,
) -> None:
    class Counting(MemoryCache):
        fetched = 0

        async def fetch(self, token: str, load: Loader, *, endpoint: str) -> Result[UserInfo]:
            type(self).fetched += 1
            return await super().fetch(token, load, endpoint=endpoint)

    async with cached_auth(hub, Counting()) as auth:
        for _ in range(3):
            assert isinstance(await auth.whoami(TOKEN), Ok)
    assert Counting.fetched == 3


async def test_redis_local_hits_are_fast_and_redis_alone_keeps_fetch(hub: FakeHub) -> None:
    local = MemoryCache(ttl=5.0)
    redis = fakeredis.FakeAsyncRedis()
    front = RedisCache(redis, secret=SECRET, local=local)
    alone = RedisCache(redis, secret=SECRET)
    async with cached_auth(hub, front) as auth, cached_auth(hub, alone) as plain:
        assert auth._cache_lookup is not None and plain._cache_lookup is None
        for _ in range(3):
            assert isinstance(await auth.whoami(TOKEN), Ok)
            assert isinstance(await plain.whoami(TOKEN), Ok)
    await redis.aclose()
    assert local.stats().hits == 2
    assert alone.stats().hits == 3  # every call a Redis hit: no synchronous path
    assert hub.request_count == 1


async def guarded_get(auth: HubAuth, token: str) -> httpx.Response:
    """One request to an app whose route HubBearer guards with ``auth``."""
    app = FastAPI()
    guard = HubBearer(auth)

    @app.get("/")
    async def who(user: UserInfo = Depends(guard)) -> dict[str, str]:  # noqa: B008
        return {"name": user.username}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.get("/", headers={"Authorization": f"Bearer {token}"})


async def test_hub_bearer_answers_a_warm_request_from_the_cache(hub: FakeHub) -> None:
    cache = MemoryCache()
    async with cached_auth(hub, cache) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        response = await guarded_get(auth, TOKEN)
    assert response.status_code == 200 and response.json() == {"name": "ada-lovelace"}
    assert hub.request_count == 1
    assert cache.stats().hits == 1


async def test_hub_bearer_keeps_the_whoami_of_a_hub_auth_subclass_on_a_warm_cache(
    hub: FakeHub,
) -> None:
    """HubBearer's synchronous hit skips ``whoami``: not when a subclass has its own."""

    class Audited(HubAuth):
        calls = 0

        async def whoami(self, token: str | SecretStr | None = None) -> Result[UserInfo]:
            type(self).calls += 1
            return await super().whoami(token)

    async with Audited(endpoint=hub.url, cache=MemoryCache(), read_env=False) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        response = await guarded_get(auth, TOKEN)
    assert response.status_code == 200
    assert Audited.calls == 2


async def test_hub_bearer_refuses_to_use_a_closed_client_even_on_a_warm_cache(
    hub: FakeHub,
) -> None:
    auth = cached_auth(hub, MemoryCache())
    assert isinstance(await auth.whoami(TOKEN), Ok)
    await auth.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await guarded_get(auth, TOKEN)


async def test_the_hit_lookup_holds_no_reference_back_to_its_cache(hub: FakeHub) -> None:
    """The lookup a cache keeps per endpoint is a closure over its tables, not over the
    cache: a dropped cache is freed at once, not at the next garbage collection."""
    cache = MemoryCache()
    async with cached_auth(hub, cache) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)
        assert isinstance(await auth.whoami(TOKEN), Ok)  # through the lookup
    assert cache.stats().hits == 1
    dropped = weakref.ref(cache)
    gc.disable()
    try:
        del cache, auth
        assert dropped() is None
    finally:
        gc.enable()
