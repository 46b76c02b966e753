"""RedisCache against a real redis-server: sharing between replicas, keys, TTL, JSON, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import fakeredis
import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, Ok, Result, UserInfo
from hub_auth._cache.memory import MemoryCache
from hub_auth._cache.policy import token_key
from hub_auth._cache.redis import RedisCache, seal, unseal, value_mac_key
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
OTHER = make_token("charles")
HUB = "https://hub.example"
SECRET = b"Qm7vT2xK9pL4wN8rB3cZ6yH1sD5fG0aJ"  # as secrets.token_urlsafe(24) makes


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace", orgs=["analytical-engines"]))
    hub.add_token(OTHER, FakeUser(name="charles-b"))
    return hub


@pytest.fixture
async def make_redis() -> AsyncIterator[Callable[[str], aioredis.Redis]]:
    """Redis clients for a URL, each closed after the test."""
    clients: list[aioredis.Redis] = []

    def make(url: str) -> aioredis.Redis:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def replica(
    hub: FakeHub, hf_home: Path, make_redis: Callable[[str], aioredis.Redis]
) -> Callable[..., HubAuth]:
    """A HubAuth standing for one replica of a service: its own client and RedisCache."""

    def make(url: str, **cache_options: object) -> HubAuth:
        options: dict[str, object] = {"secret": SECRET, **cache_options}
        cache = RedisCache(make_redis(url), **options)  # type: ignore[arg-type]
        return HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False)

    return make


def hub_auth_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "hub_auth" and record.levelno == logging.WARNING
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- sharing between replicas ------------------------------------------------------------------


async def test_second_replica_never_asks_the_hub(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    async with replica(redis_server.url) as first, replica(redis_server.url) as second:
        validated = await first.whoami(TOKEN)
        assert validated.unwrap().username == "ada-lovelace"
        assert hub.request_count == 1
        shared = await second.whoami(TOKEN)
        assert shared == validated
        assert shared.unwrap().organizations == ("analytical-engines",)
        assert hub.request_count == 1


async def test_keys_values_and_ttl_in_redis(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    make_redis: Callable[[str], aioredis.Redis],
) -> None:
    clock = FakeClock(2_000_000_000.0)
    async with replica(redis_server.url, ttl=120, prefix="svc:", clock=clock) as auth:
        await auth.whoami(TOKEN)
    inspect = make_redis(redis_server.url)
    keys = [key.decode() for key in await inspect.keys("*")]
    assert keys == ["svc:" + token_key(SECRET, TOKEN, hub.url)]
    assert TOKEN not in keys[0]
    assert TOKEN[3:] not in keys[0]
    assert 110 <= await inspect.ttl(keys[0]) <= 120
    raw = await inspect.get(keys[0])
    assert TOKEN.encode() not in raw
    version, expires, mac, body = raw.split(b":", 3)
    assert version == b"v2"
    assert int(expires) == 2_000_000_120  # its own expiry, on the cache's clock
    assert len(mac) == 64
    value = json.loads(body)  # JSON, not pickle
    assert value["user"]["username"] == "ada-lovelace"


async def test_the_injected_clock_decides_freshness(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    """The value's expiry stamp is on the cache's clock, whatever Redis's own TTL says."""
    clock = FakeClock(time.time())
    async with replica(redis_server.url, ttl=60, clock=clock) as auth:
        await auth.whoami(TOKEN)
        clock.now += 59
        await auth.whoami(TOKEN)
        assert hub.request_count == 1  # still fresh
        clock.now += 2  # past ttl: Redis still holds the value, but it has expired
        assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
        assert hub.request_count == 2
        assert isinstance(auth.cache, RedisCache)
        assert auth.cache.stats().errors == 0  # an expired value is ordinary


async def test_replicas_with_another_secret_do_not_share(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    async with (
        replica(redis_server.url) as first,
        replica(redis_server.url, secret=secrets.token_bytes(32)) as second,
    ):
        await first.whoami(TOKEN)
        await second.whoami(TOKEN)
    assert hub.request_count == 2


async def test_unauthorized_shared_only_with_negative_ttl(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    make_redis: Callable[[str], aioredis.Redis],
) -> None:
    bad = make_token("unknown")
    async with replica(redis_server.url) as first, replica(redis_server.url) as second:
        assert isinstance(await first.whoami(bad), Err)
        assert isinstance(await second.whoami(bad), Err)
        assert hub.request_count == 2
    inspect = make_redis(redis_server.url)
    assert await inspect.keys("*") == []
    async with (
        replica(redis_server.url, negative_ttl=5) as first,
        replica(redis_server.url, negative_ttl=5) as second,
    ):
        await first.whoami(bad)
        result = await second.whoami(bad)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.UNAUTHORIZED
        assert result.error.status == 401
    assert hub.request_count == 3
    (key,) = await inspect.keys("*")
    assert 1 <= await inspect.ttl(key) <= 5


async def test_a_rate_limit_is_shared_but_not_cached_as_an_answer(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    hub.rate_limit_next(retry_after=1)
    clock = FakeClock(time.time())  # the second replica's; the first keeps the real one
    async with (
        replica(redis_server.url, negative_ttl=5) as first,
        replica(redis_server.url, negative_ttl=5, clock=clock) as second,
    ):
        result = await first.whoami(TOKEN)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.RATE_LIMITED
        # Another replica does not ask the Hub before the wait is over (issue 14)...
        clock.now = time.time()  # in step with the first replica's clock from here on
        result = await second.whoami(TOKEN)
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.RATE_LIMITED
        assert result.error.retry_after is not None and 0 < result.error.retry_after <= 1
        assert hub.request_count == 1
        # ...and the 429 is not the token's answer: after the wait, the Hub is asked.
        clock.now += 1.05
        assert isinstance(await second.whoami(TOKEN), Ok)
    assert hub.request_count == 2


async def test_single_flight_across_concurrent_requests(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    hub.delay_next(0.2)
    async with replica(redis_server.url) as auth:
        results = await asyncio.gather(*(auth.whoami(TOKEN) for _ in range(300)))
        assert all(result.unwrap().username == "ada-lovelace" for result in results)
        assert isinstance(auth.cache, RedisCache)
        stats = auth.cache.stats()
    assert hub.request_count == 1
    assert stats.hub_requests == 1
    assert stats.errors == 0


async def test_set_token_deletes_the_shared_entry(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    make_redis: Callable[[str], aioredis.Redis],
) -> None:
    inspect = make_redis(redis_server.url)
    async with replica(redis_server.url) as first, replica(redis_server.url) as second:
        await first.set_token(TOKEN)
        await first.whoami()
        assert len(await inspect.keys("*")) == 1
        await first.set_token(OTHER)  # TOKEN is stale for this client now
        assert await inspect.exists("hub_auth:" + token_key(SECRET, TOKEN, hub.url)) == 0
        await second.whoami(TOKEN)
    assert hub.request_count == 2


async def test_local_cache_in_front_of_redis(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    local = MemoryCache(ttl=5.0)
    async with replica(redis_server.url, local=local) as auth:
        for _ in range(5):
            await auth.whoami(TOKEN)
        assert isinstance(auth.cache, RedisCache)
        redis_stats = auth.cache.stats()
    assert hub.request_count == 1
    assert local.stats().hits == 4
    assert local.stats().hub_requests == 1
    assert redis_stats.misses == 1
    assert redis_stats.hits == 0


# -- Redis failing -------------------------------------------------------------------------------


async def test_redis_stopped_falls_back_to_the_hub_with_one_warning(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hub_auth")
    clock = FakeClock()
    async with replica(redis_server.url, clock=clock, backoff=5.0) as auth:
        assert isinstance(await auth.whoami(TOKEN), Ok)  # Redis up: stored
        redis_server.stop()
        for token in (OTHER, TOKEN, OTHER, TOKEN):
            assert isinstance(await auth.whoami(token), Ok)
        assert hub.request_count == 5
        warnings = hub_auth_warnings(caplog)
        assert len(warnings) == 1, warnings
        assert "redis cache unavailable" in warnings[0]
        assert TOKEN not in caplog.text
        assert OTHER not in caplog.text
        # Back up: tried again after the backoff, said once, then used again.
        redis_server.start()
        clock.now += 5.0
        assert isinstance(await auth.whoami(OTHER), Ok)
        assert "redis cache reachable again" in caplog.text
        assert isinstance(await auth.whoami(OTHER), Ok)
        assert hub.request_count == 6
        # Down again: a new warning, since it had recovered.
        redis_server.stop()
        assert isinstance(await auth.whoami(make_token("third")), Err)  # unknown to FakeHub
        assert len(hub_auth_warnings(caplog)) == 2


async def test_redis_never_reachable(
    hub: FakeHub, replica: Callable[..., HubAuth], caplog: pytest.LogCaptureFixture
) -> None:
    async with replica(f"redis://127.0.0.1:{closed_port()}/0", backoff=0) as auth:
        for _ in range(3):
            assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
        assert isinstance(auth.cache, RedisCache)
        assert auth.cache.stats().errors >= 3  # backoff=0: tried every time
    assert hub.request_count == 3
    assert len(hub_auth_warnings(caplog)) == 1


async def test_slow_redis_is_given_up_after_the_timeout(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    make_redis: Callable[[str], aioredis.Redis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = make_redis(redis_server.url)
    async with replica(redis_server.url, timeout=0.1) as auth:
        await auth.whoami(OTHER)  # connect before the pause
        await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
        assert loop.time() - started < 1.0
    warnings = hub_auth_warnings(caplog)
    assert len(warnings) == 1
    assert "no answer in time" in warnings[0]


async def test_garbage_in_redis_is_replaced(
    hub: FakeHub,
    redis_server: redis_helper.RedisServer,
    replica: Callable[..., HubAuth],
    make_redis: Callable[[str], aioredis.Redis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inspect = make_redis(redis_server.url)
    key = "hub_auth:" + token_key(SECRET, TOKEN, hub.url)
    garbage = (b"\x80\x04K\x01.", b'{"v": 2}', b'{"v":1,"user":{"nope":1}}', b"v2:1:2:3")
    for value in garbage:
        await inspect.set(key, value)
        async with replica(redis_server.url) as auth:
            assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
            assert isinstance(auth.cache, RedisCache)
            assert auth.cache.available
        stored = unseal(value_mac_key(SECRET), key, await inspect.get(key), time.time())
        assert isinstance(stored, Ok)
        assert stored.value.username == "ada-lovelace"
    assert hub.request_count == len(garbage)
    # One warning per cache: each replica above was new.
    assert len(hub_auth_warnings(caplog)) == len(garbage)


def test_missing_redis_server_skips_or_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    monkeypatch.delenv("HUB_AUTH_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        redis_helper._start(tmp_path)
    monkeypatch.setenv("HUB_AUTH_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="HUB_AUTH_REQUIRE_REDIS=1 requires it"):
        redis_helper._start(tmp_path)


# -- units (fakeredis) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"secret": b"short"}, ValueError),
        ({"secret": "fifteen-chars.."}, ValueError),
        ({"secret": "31-characters-long-is-too-short"}, ValueError),
        ({"secret": b"\0" * 64}, ValueError),
        ({"secret": "hunter2!" * 8}, ValueError),
        ({"secret": 42}, TypeError),
        ({"ttl": 0.5}, ValueError),
        ({"negative_ttl": 0.5}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"prefix": None}, TypeError),
        ({"local": {}}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    options: dict[str, object] = {"secret": SECRET, **kwargs}
    with pytest.raises(error):
        RedisCache(fakeredis.FakeAsyncRedis(), **options)  # type: ignore[arg-type]


async def test_str_secret_and_decoded_responses() -> None:
    client = fakeredis.FakeAsyncRedis(decode_responses=True)
    cache = RedisCache(client, secret=SECRET.decode())
    calls = 0

    async def load(token: str) -> Result[UserInfo]:
        nonlocal calls
        calls += 1
        return Ok(UserInfo.model_validate(FakeUser(name="ada").body()))

    first = await cache.fetch(TOKEN, load, endpoint=HUB)
    second = await cache.fetch(TOKEN, load, endpoint=HUB)
    assert first == second
    assert calls == 1
    assert cache.key(TOKEN, endpoint=HUB) == "hub_auth:" + token_key(SECRET, TOKEN, HUB)
    assert TOKEN not in repr(cache)
    await client.aclose()


def test_sealed_value_round_trip() -> None:
    user = UserInfo.model_validate(
        FakeUser(name="ada", role="fineGrained", expires_at="2030-01-01T00:00:00Z").body()
    )
    mac_key, key, now = value_mac_key(SECRET), "hub_auth:k", time.time()
    later = int(now) + 60
    assert unseal(mac_key, key, seal(mac_key, key, later, Ok(user)), now) == Ok(user)
    error = HubAuthError(ErrorKind.UNAUTHORIZED, "rejected", status=401, request_id="Root=1")
    assert unseal(mac_key, key, seal(mac_key, key, later, Err(error)), now) == Err(error)
    assert unseal(mac_key, key, seal(mac_key, key, later, Ok(user)).decode(), now) == Ok(user)
    for unusable in ("not json", '{"v":1}', "v2:", "v2:x:y:z", "v3:1:2:3"):
        assert not isinstance(unseal(mac_key, key, unusable, now), Ok | Err)


async def test_a_redis_restart_does_not_put_the_cache_aside(
    hub: FakeHub, redis_server: redis_helper.RedisServer, replica: Callable[..., HubAuth]
) -> None:
    async with replica(redis_server.url) as auth:
        assert isinstance(auth.cache, RedisCache)
        assert isinstance(await auth.whoami(TOKEN), Ok)  # a pooled connection is open
        redis_server.stop()
        redis_server.start()  # the pooled connection is dead now
        assert isinstance(await auth.whoami(OTHER), Ok)
        assert auth.cache.available  # retried on a new connection, not `backoff` s of misses
        assert auth.cache.stats().errors == 0
        assert isinstance(await auth.whoami(OTHER), Ok)
    assert hub.request_count == 2


class _Refusing:
    """A Redis client whose every command fails with ``error`` (the cache sees only this)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., object]:
        async def command(*args: object, **kwargs: object) -> object:
            self.calls += 1
            raise self.error

        return command


@pytest.mark.parametrize(
    ("error", "redis_down", "calls"),
    [
        # Redis answered about the value (WRONGTYPE has no class of its own): one bad key,
        # Redis stays in use (the backoff key is read next).
        (
            ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            False,
            2,
        ),
        # A subclass says Redis itself is in trouble, whatever its text says: put aside.
        (ReadOnlyError("WRONGTYPE-looking text from a read-only replica"), True, 1),
        # A connection error is tried once more (a pooled connection Redis closed), then failed.
        (RedisConnectionError("Error connecting"), True, 2),
    ],
    ids=["wrongtype", "readonly", "connection"],
)
async def test_redis_errors_are_classified_by_type(
    error: Exception, redis_down: bool, calls: int
) -> None:
    client = _Refusing(error)
    cache = RedisCache(client, secret=SECRET, wait_for_replica=0)  # type: ignore[arg-type]

    async def load(token: str) -> Result[UserInfo]:
        return Err(HubAuthError(ErrorKind.NETWORK, "the Hub is down too"))

    result = await cache.fetch(TOKEN, load, endpoint=HUB)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NETWORK
    assert cache.available is not redis_down
    assert cache.stats().errors == 1
    assert client.calls == calls
