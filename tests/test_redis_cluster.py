"""RedisCache and RedisSessionStore on a real 6-node Redis Cluster, and what a failover does.

The cluster (3 masters, 3 replicas, 1 s node timeout) is ``tests/_redis_cluster.py``'s, started
once per session, for ``redis-server`` and, when it is installed, ``valkey-server``. A master is
killed with SIGKILL; its replica takes over in about 2 s (a bounded poll of the real servers
waits for it). The caches' own time is the injected ``clock``: the pause after a Redis failure
ends when the test moves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import redis_server as redis_helper
import session_flood
from _redis_cluster import LocalCluster, redis_cluster, redis_cluster_session
from fastapi import Depends, FastAPI
from line_child import LineChild
from manual_clock import ManualClock
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MasterDownError

from hub_auth import Err, ErrorKind, HubAuth, RedisCache, UserInfo
from hub_auth.fastapi import HubBearer, HubOAuth, RedisSessionStore
from hub_auth.testing import FakeHub, FakeUser, make_token
from tests.oauth_browser import Browser, make_app

__all__ = ["redis_cluster", "redis_cluster_session"]  # the fixtures, imported for pytest

SECRET = "Qm7vT2xK9pL4wN8rB3cZ6yH1sD5fG0aJ"
REPLICA = Path(__file__).with_name("cluster_replica.py")
BACKOFF = 5.0
TIMEOUT = 1.0
"""RedisCache's timeout here: a dead node refuses at once, and a busy CI machine must not turn
a slow answer into a Redis failure the test did not cause (the default is 0.25 s)."""


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """FakeHub in a thread: replica processes and the test's loop both ask it."""
    with FakeHub() as fake:
        yield fake


@pytest.fixture
async def client(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    connection = RedisCluster(
        host=redis_cluster.host, port=redis_cluster.port, socket_connect_timeout=1.0
    )
    await connection.initialize()
    try:
        yield connection
    finally:
        await connection.aclose()


def tokens(hub: FakeHub, prefix: str, count: int) -> list[str]:
    made = [make_token(f"{prefix}{index}") for index in range(count)]
    for index, token in enumerate(made):
        hub.add_token(token, FakeUser(name=f"{prefix}-{index}"))
    return made


# -- the cross-replica single-flight ----------------------------------------------------------


class Replica(LineChild):
    def __init__(self, cluster: LocalCluster, hub_url: str) -> None:
        env = {**os.environ, "HUB_AUTH_CACHE_SECRET": SECRET}
        super().__init__(
            [sys.executable, str(REPLICA), cluster.host, str(cluster.port), hub_url], env
        )


def test_four_processes_five_calls_each_one_hub_request(
    redis_cluster: LocalCluster, hub: FakeHub
) -> None:
    (token,) = tokens(hub, "grace", 1)
    group: list[Replica] = []
    try:
        group = [Replica(redis_cluster, hub.url) for _ in range(4)]
        assert [replica.line() for replica in group] == ["ready"] * 4
        hub.default_delay = 0.3  # a slow Hub: every process misses while the first asks
        for replica in group:
            replica.send({"whoami": token, "calls": 5})
        answers = [json.loads(replica.line()) for replica in group]
    finally:
        for replica in group:
            replica.stop()
    assert [answer["users"] for answer in answers] == [["grace-0"] * 5] * 4
    assert hub.request_count == 1
    assert sum(answer["stats"]["hub_requests"] for answer in answers) == 1
    assert sum(answer["stats"]["errors"] for answer in answers) == 0


# -- a master killed mid-load -------------------------------------------------------------------


async def test_a_master_killed_mid_load_costs_no_answer_and_the_cache_comes_back(
    redis_cluster: LocalCluster, hub: FakeHub, client: RedisCluster, clock: ManualClock
) -> None:
    cache = RedisCache(
        client, secret=SECRET, ttl=60, stale_ttl=300, backoff=BACKOFF, timeout=TIMEOUT, clock=clock
    )
    auth = HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False)
    app = FastAPI()

    bearer = HubBearer(auth=auth)

    @app.get("/me")
    async def me(user: UserInfo = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"username": user.username}

    known = tokens(hub, "known", 24)
    new = tokens(hub, "new", 200)
    names = {token: f"known-{index}" for index, token in enumerate(known)}
    names |= {token: f"new-{index}" for index, token in enumerate(new)}
    # The token whose entry sits on the master that dies (its replica holds a copy).
    victim = known[0]
    victim_key = cache.key(victim, endpoint=hub.url)
    statuses: list[int] = []
    wrong: list[str] = []

    async def get(http: httpx.AsyncClient, token: str) -> None:
        response = await http.get("/me", headers={"Authorization": f"Bearer {token}"})
        statuses.append(response.status_code)
        if response.status_code != 200 or response.json()["username"] != names[token]:
            wrong.append(f"{names[token]}: {response.status_code}")

    transport = httpx.ASGITransport(app=app)
    async with auth, httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        for token in known:
            await get(http, token)
        assert await client.exists(victim_key) == 1
        redis_cluster.wait_replicated(victim_key)
        assert hub.request_count == len(known)
        for token in known:  # every known token is a Redis hit
            await get(http, token)
        assert hub.request_count == len(known)
        assert cache.stats().hits == len(known)

        begun, taken_over = asyncio.Event(), asyncio.Event()

        async def load() -> int:
            """Pairs of requests (a new token, a known one) until the replica has taken over."""
            pairs = 0
            while not taken_over.is_set() or pairs < 20:
                token = new[pairs % len(new)]
                await asyncio.gather(get(http, token), get(http, known[pairs % len(known)]))
                pairs += 1
                if pairs == 5:
                    begun.set()
            return pairs

        running = asyncio.create_task(load())
        await begun.wait()
        dead = redis_cluster.kill_master_of(victim_key)
        takeover = await asyncio.to_thread(redis_cluster.wait_for_takeover, dead, victim_key)
        taken_over.set()
        pairs = await running
        assert takeover < 15
        assert wrong == []
        assert len(statuses) == 2 * len(known) + 2 * pairs
        during = cache.stats()
        assert during.errors >= 1  # Redis failed, and the Hub answered instead

        # The pause after the failure ends (on the injected clock): the replica that took
        # over serves the victim's entry, and every known token is a hit again.
        clock.advance(BACKOFF)
        asked = hub.request_count
        for token in known:
            await get(http, token)
        assert wrong == []
        assert hub.request_count == asked
        assert cache.stats().hits >= during.hits + len(known)
        assert cache.available


async def test_stale_answers_while_the_hub_and_a_master_are_down(
    redis_cluster: LocalCluster, hub: FakeHub, client: RedisCluster, clock: ManualClock
) -> None:
    """Past ttl, with the Hub down: stale entries answer; those on the dead master come back
    (from its replica) once the pause after the failure is over."""
    cache = RedisCache(
        client, secret=SECRET, ttl=10, stale_ttl=300, backoff=BACKOFF, timeout=TIMEOUT, clock=clock
    )
    known = tokens(hub, "stale", 12)
    async with HubAuth(endpoint=hub.url, cache=cache, max_attempts=1, read_env=False) as auth:
        for token in known:
            assert (await auth.whoami(token)).is_ok()
        keys = [cache.key(token, endpoint=hub.url) for token in known]
        for key in keys:
            redis_cluster.wait_replicated(key)
        clock.advance(11)  # past ttl: only stale answers are left
        hub.set_failure_rate(503, 1.0)
        dead = redis_cluster.kill_master_of(keys[0])
        await asyncio.to_thread(redis_cluster.wait_for_takeover, dead, keys[0])
        clock.advance(BACKOFF)
        results = [await auth.whoami(token) for token in known]
        assert [result.unwrap().username for result in results] == [
            f"stale-{index}" for index in range(len(known))
        ]
        assert cache.stats().stale == len(known)


async def test_one_replicas_429_stops_the_others_on_a_cluster(
    redis_cluster: LocalCluster, hub: FakeHub, clock: ManualClock
) -> None:
    first_token, second_token = tokens(hub, "limited", 2)
    connections = [RedisCluster(host=redis_cluster.host, port=redis_cluster.port) for _ in range(2)]
    caches = [RedisCache(c, secret=SECRET, timeout=TIMEOUT, clock=clock) for c in connections]
    try:
        for connection in connections:
            await connection.initialize()
        async with (
            HubAuth(endpoint=hub.url, cache=caches[0], max_attempts=1, read_env=False) as one,
            HubAuth(endpoint=hub.url, cache=caches[1], max_attempts=1, read_env=False) as two,
        ):
            hub.rate_limit_next(retry_after=30)
            first = await one.whoami(first_token)
            assert isinstance(first, Err) and first.error.kind is ErrorKind.RATE_LIMITED
            asked = hub.request_count
            second = await two.whoami(second_token)
            assert isinstance(second, Err) and second.error.kind is ErrorKind.RATE_LIMITED
            assert hub.request_count == asked  # the other replica did not ask
    finally:
        for connection in connections:
            await connection.aclose()


# -- sessions -------------------------------------------------------------------------------------


async def test_signed_in_sessions_survive_a_failover(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    store = RedisSessionStore(client, secret=SECRET)
    sessions = {f"{index:064x}": f"session {index}" for index in range(30)}
    for key, value in sessions.items():
        await store.save(key, value, 3600)
    # Sessions spread over the masters: one command, one key.
    masters = {redis_cluster.master_of("hub_auth:session:" + key).port for key in sessions}
    assert len(masters) == 3
    victim = "hub_auth:session:" + next(iter(sessions))
    redis_cluster.wait_replicated(victim)
    dead = redis_cluster.kill_master_of(victim)
    await asyncio.to_thread(redis_cluster.wait_for_takeover, dead, victim)
    for key, value in sessions.items():
        assert await store.load(key) == value
    async with store.lock(next(iter(sessions)), 1.0):  # the lock works on the new master
        assert await store.replace(next(iter(sessions)), "refreshed", 3600)
    assert await store.load(next(iter(sessions))) == "refreshed"


@pytest.mark.usefixtures("close_oauth_clients")
async def test_sign_in_on_one_replica_and_its_session_through_a_failover(
    redis_cluster: LocalCluster, hub: FakeHub, client: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sign in with Hugging Face across two replicas on the cluster (the sign-in in progress
    goes through the bounding script), then the master holding the session dies."""
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)
    hub.oauth.browser_user = FakeUser(name="ada-lovelace")
    registered = hub.oauth.register_app(client_secret="s3cret", scopes=["read-memberships"])

    def replica() -> FastAPI:
        oauth = HubOAuth(
            client_id=registered.client_id,
            client_secret="s3cret",
            scopes="openid profile read-memberships",
            provider_url=hub.url,
            session_store=RedisSessionStore(client, secret=SECRET),
        )
        return make_app(oauth)

    first, second = replica(), replica()
    async with Browser(first, hub) as ada, Browser(second, hub) as same_browser:
        page = await ada.start_login()  # replica one keeps the sign-in in progress...
        answer = await ada.decide(page)
        same_browser.client.cookies = ada.client.cookies  # ...replica two finishes it
        await same_browser.client.get(answer.headers["Location"])
        assert (await same_browser.client.get("/me")).json()["username"] == "ada-lovelace"
        cookie = same_browser.cookie()
        assert cookie is not None
        ada.client.cookies.set("hub_oauth_session", cookie)  # the session, on replica one too
        session = "hub_auth:session:" + hashlib.sha256(cookie.encode()).hexdigest()
        redis_cluster.wait_replicated(session)
        dead = redis_cluster.kill_master_of(session)
        await asyncio.to_thread(redis_cluster.wait_for_takeover, dead, session)
        for browser in (ada, same_browser):
            assert (await browser.client.get("/me")).json()["username"] == "ada-lovelace"


async def test_sign_ins_in_progress_stay_bounded_on_a_cluster(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    store = RedisSessionStore(
        client,
        secret=SECRET,
        max_pending_logins=1000,
        max_pending_bytes=session_flood.BOUND_BYTES,
    )
    kept = await session_flood.flood_sign_ins(store)
    pending = [key async for key in client.scan_iter("hub_auth:session:{pending}*")]
    assert len(pending) == len(kept) + 3  # the sign-ins and their index
    slots = {await client.cluster_keyslot(key) for key in pending}
    assert len(slots) == 1  # one slot: the script that bounds them may touch them all
    await session_flood.finish_sign_ins(store, kept)
    # Nothing pending: no bookkeeping left behind, only the session.
    assert [key async for key in client.scan_iter("hub_auth:session:*")] == [
        b"hub_auth:session:" + session_flood.SESSION_KEY.encode()
    ]


async def test_a_redis_in_trouble_is_an_error_for_the_session_store_not_a_sign_out(
    redis_server: redis_helper.RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """MASTERDOWN, CLUSTERDOWN, TRYAGAIN, READONLY (a failover's answers) are ResponseError
    subclasses, like WRONGTYPE's plain ResponseError: only the latter is a value not ours."""
    client = aioredis.Redis.from_url(redis_server.url)
    store = RedisSessionStore(client, secret=SECRET)
    await store.save("a" * 64, "signed in", 60)
    with socket.socket() as probe:  # a master that is not there
        probe.bind(("127.0.0.1", 0))
        nowhere = probe.getsockname()[1]
    admin = redis.Redis(port=redis_server.port)
    admin.config_set("replica-serve-stale-data", "no")
    admin.replicaof("127.0.0.1", nowhere)  # this server now answers reads with MASTERDOWN
    try:
        with caplog.at_level(logging.DEBUG, logger="hub_auth"), pytest.raises(MasterDownError):
            await store.load("a" * 64)
        assert "integrity" not in caplog.text
    finally:
        admin.replicaof("NO", "ONE")
        admin.config_set("replica-serve-stale-data", "yes")
        admin.close()
        await client.aclose()
