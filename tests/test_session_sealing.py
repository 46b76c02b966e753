"""Sealed sessions (issue 21, items 4-6): what a session store holds, and what it may refuse.

Whoever reads the store (a Redis dump) must get no token and no profile; whoever writes it
without the secret must not choose who is signed in, and a value they touched is a miss (the
user signs in again), never a 500. A refresh never brings back a session a logout ended, and
a flood of anonymous sign-ins in progress never takes room from signed-in users' sessions.
Driven through a real ``HubOAuth`` app against FakeHub, with a real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper
import session_flood
from fastapi import FastAPI

from hub_auth.fastapi import HubOAuth, MemorySessionStore, RedisSessionStore, SessionStore
from hub_auth.testing import FakeHub, FakeUser
from tests.oauth_browser import APP, Browser, make_app

SECRET = "sealing-test-secret-" + "0123456789abcdefghijklmnopq"
OTHER_SECRET = "another-test-secret-" + "qponmlkjihgfedcba9876543210"
PREFIX = "hub_auth:session:"
LOGOUT = "/oauth/huggingface/logout"
ADA = FakeUser(name="ada-lovelace", orgs=[{"name": "analytical-engines", "role_in_org": "admin"}])
GRACE = FakeUser(name="grace-hopper")


@pytest.fixture(autouse=True)
def no_space_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with FakeHub() as hub:
        hub.oauth.browser_user = ADA
        yield hub


@pytest.fixture
async def client(redis_server: redis_helper.RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


def replica_factory(hub: FakeHub, **options: Any) -> Callable[[SessionStore], HubOAuth]:
    """HubOAuth instances of one registered app (replicas), each with the store it is given."""
    registered = hub.oauth.register_app(client_secret="s3cret", scopes=["read-memberships"])

    def replica(store: SessionStore) -> HubOAuth:
        return HubOAuth(
            client_id=registered.client_id,
            client_secret="s3cret",
            scopes="openid profile read-memberships",
            provider_url=hub.url,
            session_store=store,
            **options,
        )

    return replica


def redis_key(cookie: str | None) -> str:
    """The Redis key of a session: the prefix and the SHA-256 of the browser's id."""
    assert cookie is not None
    return PREFIX + hashlib.sha256(cookie.encode()).hexdigest()


async def logout(browser: Browser) -> httpx.Response:
    """Sign out as the app's own page does (same origin), whatever method the route takes."""
    return await browser.client.request(
        "POST" if await _logout_is_post(browser) else "GET",
        LOGOUT,
        headers={"Origin": APP, "Sec-Fetch-Site": "same-origin"},
    )


async def _logout_is_post(browser: Browser) -> bool:
    probe = await browser.client.request("OPTIONS", LOGOUT)
    return "POST" in probe.headers.get("allow", "")


def integrity_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "hub_auth"
        and record.levelno == logging.WARNING
        and "integrity" in record.getMessage()
    ]


def forged_session(username: str, org: str) -> str:
    """A session value as the store held it before sealing: plain JSON, someone else's name."""
    now = time.time()
    return json.dumps(
        {
            "userinfo": {
                "sub": "0" * 24,
                "preferred_username": username,
                "orgs": [{"sub": "1" * 24, "preferred_username": org}],
            },
            "access_token": "forged-access-token",
            "refresh_token": None,
            "expires_at": now + 3600,
            "scopes": ["openid", "profile", "read-memberships"],
            "ends_at": now + 86400,
        }
    )


# -- what the store holds ----------------------------------------------------------------------


async def test_redis_holds_neither_tokens_nor_the_profile(
    hub: FakeHub, client: aioredis.Redis
) -> None:
    replica = replica_factory(hub)
    async with Browser(make_app(replica(RedisSessionStore(client, secret=SECRET))), hub) as ada:
        await ada.sign_in()
        token = (await ada.client.get("/me")).json()["token"]
        refresh_tokens = list(hub.oauth._refresh_tokens)
        assert refresh_tokens
        values = [await client.get(key) async for key in client.scan_iter(PREFIX + "*")]
        assert values == [await client.get(redis_key(ada.cookie()))]
        (value,) = values
        assert value.startswith(b"hs1:")
        for secret in [token, *refresh_tokens, "ada-lovelace", "analytical-engines"]:
            assert secret.encode() not in value


async def test_the_memory_store_holds_sealed_values(hub: FakeHub) -> None:
    store = MemorySessionStore()
    async with Browser(make_app(replica_factory(hub)(store)), hub) as ada:
        await ada.sign_in()
        token = (await ada.client.get("/me")).json()["token"]
    # The store's own table: what a heap dump or a debugger would see.
    (sealed, _), *others = store._entries.values()
    assert not others
    assert sealed.startswith("hs1:")
    assert token not in sealed
    assert "ada-lovelace" not in sealed


# -- what a writer without the secret can do ----------------------------------------------------


async def test_a_forged_identity_is_a_miss_not_a_sign_in(
    hub: FakeHub, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack of the issue: a self-written value that passed ``require_orgs``."""
    oauth = replica_factory(hub, require_orgs=["analytical-engines"])(
        RedisSessionStore(client, secret=SECRET)
    )
    async with Browser(make_app(oauth), hub) as ada:
        await ada.sign_in()
        assert (await ada.client.get("/me")).json()["username"] == "ada-lovelace"
        await client.set(
            redis_key(ada.cookie()), forged_session("root-admin", "analytical-engines")
        )
        answer = await ada.client.get("/me")
        assert answer.status_code == 401
        assert "root-admin" not in answer.text
        assert (await ada.client.get("/")).json()["user"] is None
    assert len(integrity_warnings(caplog)) == 1  # once, not once per request


def _flip_a_bit(value: bytes) -> bytes:
    middle = len(value) // 2
    return value[:middle] + bytes([value[middle] ^ 0x01]) + value[middle + 1 :]


TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "a flipped bit": _flip_a_bit,
    "truncated": lambda value: value[: len(value) // 2],
    "not UTF-8": lambda value: b"\xff\xfe" + value,
    "the right prefix, garbage after": lambda value: b"hs1:" + b"A" * 80,
    "an empty value": lambda value: b"",
    "written before sealing": lambda value: forged_session("ada-lovelace", "x").encode(),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
async def test_a_tampered_value_is_a_miss_never_a_500(
    hub: FakeHub,
    client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    tamper: Callable[[bytes], bytes],
) -> None:
    oauth = replica_factory(hub)(RedisSessionStore(client, secret=SECRET))
    async with Browser(make_app(oauth), hub) as ada:
        await ada.sign_in()
        key = redis_key(ada.cookie())
        value = await client.get(key)
        await client.set(key, tamper(value), keepttl=True)
        assert (await ada.client.get("/me")).status_code == 401
        assert (await ada.client.get("/")).json()["user"] is None
        # Signing in again replaces the bad value.
        await ada.sign_in()
        assert (await ada.client.get("/me")).json()["username"] == "ada-lovelace"
    (warning,) = integrity_warnings(caplog)
    assert key.removeprefix(PREFIX) not in warning.getMessage()


async def test_a_value_of_another_type_is_a_miss(
    hub: FakeHub, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    oauth = replica_factory(hub)(RedisSessionStore(client, secret=SECRET))
    async with Browser(make_app(oauth), hub) as ada:
        await ada.sign_in()
        key = redis_key(ada.cookie())
        await client.delete(key)
        await client.rpush(key, "not", "a", "string")  # GET answers WRONGTYPE
        assert (await ada.client.get("/me")).status_code == 401
    assert len(integrity_warnings(caplog)) == 1


async def test_a_value_moved_to_another_session_does_not_open(
    hub: FakeHub, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(replica_factory(hub)(RedisSessionStore(client, secret=SECRET)))
    async with Browser(app, hub) as ada, Browser(app, hub) as grace:
        await ada.sign_in()
        hub.oauth.browser_user = GRACE
        await grace.sign_in()
        assert (await grace.client.get("/me")).json()["username"] == "grace-hopper"
        # Grace can write to Redis: she copies Ada's sealed session over her own.
        await client.copy(redis_key(ada.cookie()), redis_key(grace.cookie()), replace=True)
        assert (await grace.client.get("/me")).status_code == 401
        assert (await ada.client.get("/me")).json()["username"] == "ada-lovelace"
    assert len(integrity_warnings(caplog)) == 1


async def test_replicas_share_sessions_only_under_the_same_secret(
    hub: FakeHub, client: aioredis.Redis
) -> None:
    replica = replica_factory(hub)
    first = make_app(replica(RedisSessionStore(client, secret=SECRET)))
    same = make_app(replica(RedisSessionStore(client, secret=SECRET.encode())))  # bytes or str
    other = make_app(replica(RedisSessionStore(client, secret=OTHER_SECRET)))
    async with Browser(first, hub) as ada, Browser(same, hub) as twin, Browser(other, hub) as thief:
        await ada.sign_in()
        cookie = ada.cookie()
        assert cookie is not None
        twin.client.cookies.set("hub_oauth_session", cookie)
        thief.client.cookies.set("hub_oauth_session", cookie)
        assert (await twin.client.get("/me")).json()["username"] == "ada-lovelace"
        assert (await thief.client.get("/me")).status_code == 401


# -- where the key comes from -------------------------------------------------------------------


async def test_a_redis_store_needs_a_secret_shared_by_the_replicas(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"secret=.*every replica"):
        RedisSessionStore(client)
    with pytest.raises(ValueError, match="too short"):
        RedisSessionStore(client, secret="s3cret")
    with pytest.raises(ValueError, match="too weak"):
        RedisSessionStore(client, secret="password" * 4)
    with pytest.raises(ValueError, match="too short"):
        MemorySessionStore(secret=b"0123456789")
    # On a Space (hf_oauth: true), OAUTH_CLIENT_SECRET is the default, under its own label.
    monkeypatch.setenv("SPACE_HOST", "someone-app.hf.space")
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "tiny-client-secret")
    with pytest.raises(ValueError, match=r"OAUTH_CLIENT_SECRET .* too short") as refused:
        RedisSessionStore(client)
    assert "tiny-client-secret" not in str(refused.value)
    space_secret = "3f0c2a9e-5b71-4d8e-9a26-c1e4b7f08d53"  # the shape the Hub gives Spaces
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", space_secret)
    writer, reader = RedisSessionStore(client), RedisSessionStore(client)
    await writer.save("k" * 64, '{"a": 1}', 60)
    assert await reader.load("k" * 64) == '{"a": 1}'
    assert await RedisSessionStore(client, secret=space_secret).load("k" * 64) is None


async def test_memory_stores_without_a_secret_use_a_key_of_their_own() -> None:
    first, second = MemorySessionStore(), MemorySessionStore()
    await first.save("k" * 64, "value", 60)
    sealed = first._entries["k" * 64][0]
    second._entries["k" * 64] = (sealed, time.monotonic() + 60)  # as a memory dump would
    assert await second.load("k" * 64) is None
    assert await first.load("k" * 64) == "value"


# -- a logout during a refresh ------------------------------------------------------------------


class DictStore:
    """A store of someone's own: the protocol's four methods and nothing else (no ``replace``,
    a no-op lock), as the protocol's documentation allows."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def load(self, key: str) -> str | None:
        return self.values.get(key)

    async def save(self, key: str, value: str, ttl: float) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)

    def lock(self, key: str, seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


async def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("kind", ["memory", "custom store", "redis, two replicas"])
async def test_a_logout_during_a_refresh_stays_logged_out(
    hub: FakeHub, client: aioredis.Redis, kind: str
) -> None:
    # Every request refreshes: the token lives 60 s, the margin is 300 s.
    hub.oauth.access_token_lifetime = 60.0
    replica = replica_factory(hub, refresh_margin=300.0)
    refreshing: FastAPI
    ending: FastAPI
    if kind == "redis, two replicas":
        refreshing = make_app(replica(RedisSessionStore(client, secret=SECRET)))
        ending = make_app(replica(RedisSessionStore(client, secret=SECRET)))
    else:
        refreshing = ending = make_app(
            replica(MemorySessionStore() if kind == "memory" else DictStore())
        )
    async with Browser(refreshing, hub) as ada, Browser(ending, hub) as other_tab:
        await ada.sign_in()
        assert (await ada.client.get("/me")).status_code == 200
        other_tab.client.cookies.set("hub_oauth_session", ada.cookie() or "")
        hub.oauth.refresh_delay = 0.3
        before = hub.oauth.refresh_requests
        in_flight = asyncio.create_task(ada.client.get("/me"))
        await _wait_for(lambda: hub.oauth.refresh_requests > before)
        assert (await logout(other_tab)).status_code in (200, 302, 303)
        assert (await in_flight).status_code in (200, 401)  # it began before the logout
        hub.oauth.refresh_delay = 0.0
        assert (await ada.client.get("/me")).status_code == 401
        assert (await other_tab.client.get("/me")).status_code == 401


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_replace_saves_only_a_session_that_still_exists(
    client: aioredis.Redis, kind: str
) -> None:
    store = MemorySessionStore() if kind == "memory" else RedisSessionStore(client, secret=SECRET)
    key = "a" * 64
    assert await store.replace(key, "refreshed", 60) is False
    assert await store.load(key) is None
    await store.save(key, "signed in", 60)
    assert await store.replace(key, "refreshed", 60) is True
    assert await store.load(key) == "refreshed"
    await store.delete(key)
    assert await store.replace(key, "refreshed again", 60) is False
    assert await store.load(key) is None


# -- floods of sign-ins in progress ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_sign_ins_in_progress_are_bounded_in_bytes_apart_from_sessions(
    client: aioredis.Redis, kind: str
) -> None:
    bounds = {"max_pending_logins": 1000, "max_pending_bytes": session_flood.BOUND_BYTES}
    store: MemorySessionStore | RedisSessionStore = (
        MemorySessionStore(max_sessions=5, **bounds)
        if kind == "memory"
        else RedisSessionStore(client, secret=SECRET, **bounds)
    )
    kept = await session_flood.flood_sign_ins(store)
    if kind == "redis":
        await session_flood.finish_sign_ins(store, kept)
        # Nothing pending: no bookkeeping left behind, only the session.
        assert [key async for key in client.scan_iter(PREFIX + "*")] == [
            (PREFIX + session_flood.SESSION_KEY).encode()
        ]


async def test_an_anonymous_flood_leaves_room_for_sessions_in_redis(
    hub: FakeHub, client: aioredis.Redis
) -> None:
    """Redis with a memory limit (the default policy refuses writes when full): 400 anonymous
    sign-ins, ~1 MB, against 512 KB of room. Unbounded, the flood fills Redis and sign-ins and
    refreshes fail; bounded, it keeps at most 20 and signed-in users go on."""
    app = make_app(
        replica_factory(hub)(
            RedisSessionStore(
                client, secret=SECRET, max_pending_logins=20, max_pending_bytes=64 << 10
            )
        )
    )
    try:
        async with Browser(app, hub) as ada, Browser(app, hub) as stranger:
            await ada.sign_in()
            used = (await client.info("memory"))["used_memory"]
            await client.config_set("maxmemory-policy", "noeviction")
            await client.config_set("maxmemory", used + (512 << 10))
            long_next = "/" + "x" * 1500  # under the 2 KiB `next` limit
            for _ in range(400):
                stranger.client.cookies.clear()
                started = await stranger.client.get(
                    "/oauth/huggingface/login", params={"next": long_next}, follow_redirects=False
                )
                assert started.status_code == 302
            pending = [key async for key in client.scan_iter(PREFIX + "{pending}login:*")]
            assert len(pending) <= 20
            assert sum([await client.strlen(key) for key in pending]) <= 64 << 10
            for key in pending:
                assert 0 < await client.pttl(key) <= 600_000
            assert (await ada.client.get("/me")).json()["username"] == "ada-lovelace"
            hub.oauth.browser_user = GRACE  # and someone new can still sign in
            async with Browser(app, hub) as grace:
                await grace.sign_in()
                assert (await grace.client.get("/me")).json()["username"] == "grace-hopper"
    finally:  # the Redis server is shared by the session's tests
        await client.config_set("maxmemory", 0)
