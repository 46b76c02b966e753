"""Cache hardening (issue 17): sealed Redis values, endpoint-scoped keys, secret strength,
a bound of their own for cached 401s, and one error object per caller.

The Redis tests play the attacker of the review: someone who can write to the shared Redis but
does not know the secret. They call the service once with their own token, find the new key
with SCAN, and overwrite its value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import redis_server as redis_helper
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, Ok, Result, UserInfo
from hub_auth._cache.memory import MemoryCache
from hub_auth._cache.policy import check_secret
from hub_auth._cache.redis import MAX_VALUE_BYTES, RedisCache, seal, value_mac_key
from hub_auth.fastapi import HubBearer
from hub_auth.testing import FakeHub, FakeUser, make_token

SECRET = secrets.token_urlsafe(32).encode()
MALLORY = make_token("mallory")  # the attacker's own, real token: no orgs, read role
ADMIN = make_token("admin")  # a real admin of huggingface
HUB = "https://hub.example"

FORGED_USER = FakeUser(
    name="mallory", orgs=[{"name": "huggingface", "role_in_org": "admin"}], role="admin"
).body()


def forged_values(stolen: bytes) -> dict[str, bytes]:
    """What an attacker without the secret can write, given a real value of another key."""
    body = json.dumps({"user": FORGED_USER}).encode()
    version, expires, mac, _ = stolen.split(b":", 3)
    far = str(int(time.time()) + 10**6).encode()
    return {
        "v1 JSON, as main stored it": json.dumps({"v": 1, "user": FORGED_USER}).encode(),
        "v2 without a MAC": b"v2:" + far + b"::" + body,
        "v2 without a MAC field": b"v2:" + far + b":" + body,
        "v2 with a made-up MAC": b"v2:" + far + b":" + b"0" * 64 + b":" + body,
        "v2 with another value's MAC": b":".join((version, expires, mac, body)),
        "another key's whole value": stolen,
    }


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(MALLORY, FakeUser(name="mallory", role="read"))
    admin_orgs = [{"name": "huggingface", "role_in_org": "admin"}]
    hub.add_token(ADMIN, FakeUser(name="root", orgs=admin_orgs, role="admin"))
    return hub


@pytest.fixture
async def inspect(redis_server: redis_helper.RedisServer) -> AsyncIterator[aioredis.Redis]:
    """The attacker's own connection to the shared Redis."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def service(
    hub: FakeHub, redis_server: redis_helper.RedisServer, hf_home: Path
) -> AsyncIterator[Callable[..., HubAuth]]:
    """HubAuth clients with a RedisCache on the shared Redis, closed after the test."""
    clients: list[aioredis.Redis] = []

    def make(**cache_options: Any) -> HubAuth:
        client = aioredis.Redis.from_url(redis_server.url, **cache_options.pop("client", {}))
        clients.append(client)
        cache = RedisCache(client, secret=SECRET, **cache_options)
        return HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False)

    yield make
    for client in clients:
        await client.aclose()


async def only_key(redis_client: aioredis.Redis) -> bytes:
    keys = [key async for key in redis_client.scan_iter(match="hub_auth:*")]
    assert len(keys) == 1, keys
    return keys[0]


def redis_cache(auth: HubAuth) -> RedisCache:
    assert isinstance(auth.cache, RedisCache)
    return auth.cache


async def assert_answered_by_the_hub(
    auth: HubAuth, hub: FakeHub, inspect: aioredis.Redis, key: bytes
) -> None:
    """MALLORY is mallory again, the Hub was asked, Redis stays in use, the value is replaced."""
    before = hub.request_count
    user = (await auth.whoami(MALLORY)).unwrap()
    assert user.username == "mallory"
    assert "huggingface" not in user.organizations
    assert user.token is not None and user.token.role == "read"
    assert hub.request_count == before + 1
    assert redis_cache(auth).available
    assert await inspect.type(key) == b"string"
    assert (await inspect.get(key) or b"").startswith(b"v2:")
    # The replaced value is good again: the next call is a Redis hit.
    assert (await auth.whoami(MALLORY)).unwrap().username == "mallory"
    assert hub.request_count == before + 1


# -- the attack of the review ----------------------------------------------------------------


async def test_forged_identity_in_redis_is_not_accepted(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    async with service() as auth:
        await auth.whoami(ADMIN)  # a real admin's value, for the attacker to copy
        admin_key = await only_key(inspect)
        stolen = await inspect.get(admin_key)
        assert stolen is not None
        assert (await auth.whoami(MALLORY)).unwrap().username == "mallory"
        keys = [key async for key in inspect.scan_iter(match="hub_auth:*")]
        (key,) = [key for key in keys if key != admin_key]
        assert hub.request_count == 2
        for name, forged in forged_values(stolen).items():
            await inspect.set(key, forged)  # no TTL, as an attacker would write it
            result = await auth.whoami(MALLORY)
            assert result.unwrap().username == "mallory", name
            assert "huggingface" not in result.unwrap().organizations, name
            assert redis_cache(auth).available, name
        assert hub.request_count == 2 + len(forged_values(stolen))
        assert redis_cache(auth).stats().errors == len(forged_values(stolen))


async def test_tampered_expiry_is_a_miss(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    async with service(ttl=60) as auth:
        await auth.whoami(MALLORY)
        key = await only_key(inspect)
        value = await inspect.get(key)
        assert value is not None
        version, expires, mac, body = value.split(b":", 3)
        later = str(int(expires) + 3600).encode()
        await inspect.set(key, b":".join((version, later, mac, body)))
        await inspect.persist(key)
        await assert_answered_by_the_hub(auth, hub, inspect, key)


async def test_value_past_its_own_expiry_is_a_miss(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    """A genuine value kept past its expiry (PERSIST, a restored snapshot) is not used."""
    async with service() as auth:
        await auth.whoami(MALLORY)
        key = await only_key(inspect)
        user = UserInfo.model_validate(FORGED_USER)
        sealed = seal(value_mac_key(SECRET), key.decode(), int(time.time()) - 1, Ok(user))
        await inspect.set(key, sealed)  # no TTL
        await assert_answered_by_the_hub(auth, hub, inspect, key)
        assert redis_cache(auth).stats().errors == 0  # expiry is ordinary, not tampering


async def test_hash_at_the_key_is_a_miss_and_redis_stays_in_use(
    hub: FakeHub,
    service: Callable[..., HubAuth],
    inspect: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with service() as auth:
        await auth.whoami(MALLORY)
        key = await only_key(inspect)
        await inspect.delete(key)
        await inspect.hset(key, mapping={"user": json.dumps(FORGED_USER)})
        await assert_answered_by_the_hub(auth, hub, inspect, key)
    assert "redis cache unavailable" not in caplog.text


async def test_large_value_is_a_miss_even_with_a_valid_mac(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    """1 MiB: only MAX_VALUE_BYTES + 1 are read, and nothing is parsed."""
    async with service() as auth:
        await auth.whoami(MALLORY)
        key = await only_key(inspect)
        await inspect.set(key, b"v2:" + b"9" * (1024 * 1024))
        await assert_answered_by_the_hub(auth, hub, inspect, key)
        # Even a genuine seal (the secret known) is refused when too large.
        many_orgs = FakeUser(name="mallory", orgs=[f"org-{i:05d}" for i in range(4000)]).body()
        user = UserInfo.model_validate(many_orgs)
        sealed = seal(value_mac_key(SECRET), key.decode(), int(time.time()) + 60, Ok(user))
        assert len(sealed) > MAX_VALUE_BYTES
        await inspect.set(key, sealed)
        await assert_answered_by_the_hub(auth, hub, inspect, key)


async def test_value_that_is_not_utf8_with_decoded_responses(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    async with service(client={"decode_responses": True}) as auth:
        await auth.whoami(MALLORY)
        key = await only_key(inspect)
        await inspect.set(key, b"v2:\xff\xfe\x80")
        await assert_answered_by_the_hub(auth, hub, inspect, key)


async def test_bad_value_for_an_answer_not_kept_is_deleted(
    hub: FakeHub, service: Callable[..., HubAuth], inspect: aioredis.Redis
) -> None:
    unknown = make_token("unknown")
    async with service() as auth:  # negative_ttl=0: a 401 is not kept
        key = redis_cache(auth).key(unknown, endpoint=hub.url)
        await inspect.set(key, json.dumps({"v": 1, "user": FORGED_USER}))
        result = await auth.whoami(unknown)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.UNAUTHORIZED
    assert await inspect.exists(key) == 0


# -- the same through a FastAPI route ---------------------------------------------------------


def test_forged_admin_stays_forbidden_on_a_fastapi_route(
    fake_hub: FakeHub, redis_server: redis_helper.RedisServer
) -> None:
    fake_hub.add_token(MALLORY, FakeUser(name="mallory", role="read"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(redis_server.url)  # on the app's own loop
        cache = RedisCache(client, secret=SECRET)
        async with HubAuth(endpoint=fake_hub.url, cache=cache, max_attempts=1) as auth:
            app.state.hub_auth = auth
            yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)
    guard = HubBearer(require_orgs=["huggingface"], require_role="admin")

    @app.get("/admin")
    async def admin(user: UserInfo = Depends(guard)) -> dict[str, str]:  # noqa: B008
        return {"username": user.username}

    headers = {"Authorization": f"Bearer {MALLORY}"}
    attacker = redis.Redis.from_url(redis_server.url)
    try:
        with TestClient(app) as client:
            assert client.get("/admin", headers=headers).status_code == 403
            (key,) = list(attacker.scan_iter(match="hub_auth:*"))
            for forged in (
                json.dumps({"v": 1, "user": FORGED_USER}).encode(),
                b"v2:9999999999:" + b"0" * 64 + b":" + json.dumps({"user": FORGED_USER}).encode(),
            ):
                attacker.set(key, forged)
                assert client.get("/admin", headers=headers).status_code == 403
        assert fake_hub.request_count == 3
    finally:
        attacker.close()


# -- endpoint scoping -------------------------------------------------------------------------


@pytest.fixture
async def two_hubs() -> AsyncIterator[tuple[FakeHub, FakeHub]]:
    async with FakeHub() as staging, FakeHub() as production:
        yield staging, production


async def test_memory_cache_keeps_two_hubs_apart(
    two_hubs: tuple[FakeHub, FakeHub], hf_home: Path
) -> None:
    staging, production = two_hubs
    staging.add_token(MALLORY, FakeUser(name="mallory-on-staging"))
    cache = MemoryCache()
    async with (
        HubAuth(endpoint=staging.url, cache=cache, max_attempts=1) as on_staging,
        HubAuth(endpoint=production.url, cache=cache, max_attempts=1) as on_production,
    ):
        assert (await on_staging.whoami(MALLORY)).unwrap().username == "mallory-on-staging"
        result = await on_production.whoami(MALLORY)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.UNAUTHORIZED
        assert (staging.request_count, production.request_count) == (1, 1)
        # Each Hub's answer is cached under its own key: a repeat asks neither.
        assert isinstance(await on_staging.whoami(MALLORY), Ok)
        assert staging.request_count == 1


async def test_redis_cache_keeps_two_hubs_apart(
    two_hubs: tuple[FakeHub, FakeHub], redis_server: redis_helper.RedisServer, hf_home: Path
) -> None:
    staging, production = two_hubs
    staging.add_token(MALLORY, FakeUser(name="mallory-on-staging"))
    production.add_token(MALLORY, FakeUser(name="mallory-on-production"))
    client = aioredis.Redis.from_url(redis_server.url)
    cache = RedisCache(client, secret=SECRET)
    try:
        async with (
            HubAuth(endpoint=staging.url, cache=cache, max_attempts=1) as on_staging,
            HubAuth(endpoint=production.url, cache=cache, max_attempts=1) as on_production,
        ):
            assert (await on_staging.whoami(MALLORY)).unwrap().username == "mallory-on-staging"
            on_prod = (await on_production.whoami(MALLORY)).unwrap()
            assert on_prod.username == "mallory-on-production"
            assert (staging.request_count, production.request_count) == (1, 1)
            assert len([key async for key in client.scan_iter(match="hub_auth:*")]) == 2
            # Invalidation is per Hub too.
            await cache.invalidate(MALLORY, endpoint=staging.url)
            await on_production.whoami(MALLORY)
            assert production.request_count == 1
    finally:
        await client.aclose()


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    [
        "a" * 32,
        b"\x00" * 64,
        "password" * 4,
        "correct-horse" * 3,
        "0123456789" * 4,
        "short-but-random-Xq9",
    ],
)
def test_weak_secrets_are_refused_with_advice(weak: str | bytes) -> None:
    for make in (
        lambda: RedisCache(aioredis.Redis(), secret=weak),
        lambda: MemoryCache(key=weak),
    ):
        with pytest.raises(ValueError, match=r"secrets\.token_urlsafe\(32\)") as caught:
            make()
        text = weak if isinstance(weak, str) else weak.decode("latin-1")
        assert text not in str(caught.value)


def test_random_secrets_are_always_accepted() -> None:
    """The weak-secret rule never refuses (or alters) what ``secrets`` makes."""
    for _ in range(300):
        for secret in (
            secrets.token_urlsafe(32),
            secrets.token_hex(16),
            secrets.token_bytes(32),
        ):
            raw = secret.encode() if isinstance(secret, str) else secret
            assert check_secret(secret, "key") == raw


# -- flood of bad tokens ----------------------------------------------------------------------


async def test_flood_of_bad_tokens_never_evicts_valid_users(hub: FakeHub, hf_home: Path) -> None:
    valid = [hub.add_token(name=f"user{index}") for index in range(50)]
    cache = MemoryCache(max_entries=50, negative_ttl=60.0)
    async with HubAuth(endpoint=hub.url, cache=cache, max_attempts=1) as auth:
        for token in valid:
            assert isinstance(await auth.whoami(token), Ok)
        before = hub.request_count
        flood = [make_token(f"flood{index}") for index in range(500)]
        for token in flood:
            assert isinstance(await auth.whoami(token), Err)
        assert hub.request_count == before + 500
        for token in valid:
            assert isinstance(await auth.whoami(token), Ok)
        assert hub.request_count == before + 500  # every valid user was still a hit
        assert len(cache) <= 50 + cache.max_negative_entries
        assert cache.max_negative_entries == 5
        # The most recent bad tokens are still answered without the Hub.
        await auth.whoami(flood[-1])
        assert hub.request_count == before + 500


async def test_flood_does_not_evict_valid_users_from_the_local_layer(
    hub: FakeHub, service: Callable[..., HubAuth]
) -> None:
    valid = [hub.add_token(name=f"user{index}") for index in range(20)]
    local = MemoryCache(ttl=30.0, max_entries=20, negative_ttl=30.0)
    async with service(local=local, negative_ttl=30) as auth:
        for token in valid:
            await auth.whoami(token)
        redis_hits = redis_cache(auth).stats().hits
        for index in range(200):
            await auth.whoami(make_token(f"flood{index}"))
        for token in valid:
            assert isinstance(await auth.whoami(token), Ok)
        # Answered by the local layer: neither the Hub nor Redis was asked again.
        assert redis_cache(auth).stats().hits == redis_hits
        assert hub.request_count == 20 + 200


# -- one error object per caller --------------------------------------------------------------


def unauthorized() -> Err[HubAuthError]:
    error = HubAuthError(ErrorKind.UNAUTHORIZED, "rejected", status=401, request_id="Root=1-x")
    return Err(error)


async def raise_in_a_task(error: HubAuthError) -> None:
    async def fail() -> None:
        raise error

    with pytest.raises(HubAuthError):
        await asyncio.create_task(fail())


async def test_cached_error_is_a_new_object_for_each_caller() -> None:
    cache = MemoryCache(negative_ttl=60.0)

    async def load(token: str) -> Result[UserInfo]:
        return unauthorized()

    first = await cache.fetch(MALLORY, load, endpoint=HUB)
    second = await cache.fetch(MALLORY, load, endpoint=HUB)  # a hit
    third = await cache.fetch(MALLORY, load, endpoint=HUB)
    assert cache.stats().hits == 2
    assert isinstance(first, Err) and isinstance(second, Err) and isinstance(third, Err)
    assert first.error is not second.error and second.error is not third.error
    assert first == second == third == unauthorized()
    await raise_in_a_task(second.error)
    assert second.error.__traceback__ is not None
    assert third.error.__traceback__ is None
    assert first.error.__traceback__ is None


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_single_flight_waiters_get_their_own_error(
    kind: str, redis_server: redis_helper.RedisServer
) -> None:
    gate = asyncio.Event()
    calls = 0

    async def load(token: str) -> Result[UserInfo]:
        nonlocal calls
        calls += 1
        await gate.wait()
        error = HubAuthError(ErrorKind.SERVER_ERROR, "busy", status=503, retry_after=2.0)
        return Err(error)

    client = aioredis.Redis.from_url(redis_server.url)
    cache = MemoryCache() if kind == "memory" else RedisCache(client, secret=SECRET)
    try:
        waiting = [asyncio.create_task(cache.fetch(MALLORY, load, endpoint=HUB)) for _ in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*waiting)
    finally:
        await client.aclose()
    assert calls == 1
    errors = [result.error for result in results if isinstance(result, Err)]
    assert len(errors) == 3
    assert len({id(error) for error in errors}) == 3
    assert errors[0] == errors[1] == errors[2]
    assert (errors[0].kind, errors[0].status, errors[0].retry_after) == (
        ErrorKind.SERVER_ERROR,
        503,
        2.0,
    )
    await raise_in_a_task(errors[0])
    assert errors[1].__traceback__ is None and errors[2].__traceback__ is None


def test_logs_never_show_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cache = RedisCache(aioredis.Redis(), secret=SECRET)
    assert SECRET.decode() not in repr(cache)
    assert SECRET.decode() not in caplog.text
