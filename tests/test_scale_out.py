"""Replicas in separate processes on one real redis-server (issue 14): one Hub request per
token, a dead lock holder, stale-if-error and the shared rate-limit backoff.

Each replica is ``tests/scale_replica.py`` in a process of its own (its own HubAuth, HubClient
and RedisCache); FakeHub runs in a thread of the test process and counts the requests. Time
passes by moving every replica's cache clock ahead together (``advance``), not by sleeping.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis_server as redis_helper
from line_child import LineChild

from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
NEW = make_token("grace")
SECRET = "Qm7vT2xK9pL4wN8rB3cZ6yH1sD5fG0aJ"
REPLICA = Path(__file__).with_name("scale_replica.py")


class Replica(LineChild):
    """One replica process: ``ask`` sends a command, ``answer`` reads its reply."""

    def __init__(self, redis_url: str, hub_url: str, options: dict[str, Any]) -> None:
        env = {**os.environ, "HUB_AUTH_CACHE_SECRET": SECRET}
        super().__init__(
            [sys.executable, str(REPLICA), redis_url, hub_url, json.dumps(options)], env
        )

    def ready(self) -> None:
        assert self.line() == "ready"

    def ask(self, token: str) -> None:
        self.send({"whoami": token})

    def answer(self) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.line())
        return reply

    def whoami(self, token: str) -> dict[str, Any]:
        self.ask(token)
        return self.answer()

    def stats(self) -> dict[str, Any]:
        self.send({"stats": True})
        return self.answer()

    def advance(self, seconds: float) -> None:
        self.send({"advance": seconds})
        assert self.answer() == {"advanced": seconds}


def advance(group: list[Replica], seconds: float) -> None:
    """Time passes for every replica of ``group`` (their clocks stay in step)."""
    for replica in group:
        replica.advance(seconds)


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (something another process does) for up to 10 s."""
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as fake:
        fake.add_token(TOKEN, FakeUser(name="ada-lovelace"))
        fake.add_token(NEW, FakeUser(name="grace-hopper"))
        yield fake


@pytest.fixture
def replicas(
    hub: FakeHub, redis_server: redis_helper.RedisServer
) -> Iterator[Callable[..., list[Replica]]]:
    started: list[Replica] = []

    def start(count: int, **options: Any) -> list[Replica]:
        made = [Replica(redis_server.url, hub.url, options) for _ in range(count)]
        started.extend(made)
        for replica in made:
            replica.ready()
        return made

    yield start
    for replica in started:
        replica.stop()


def test_one_hub_request_for_a_new_token_in_many_processes(
    hub: FakeHub, replicas: Callable[..., list[Replica]]
) -> None:
    group = replicas(4)
    hub.default_delay = 0.5  # the Hub is slow: every replica misses while the first asks
    for replica in group:
        replica.ask(NEW)
    answers = [replica.answer() for replica in group]
    assert answers == [{"user": "grace-hopper"}] * 4
    assert hub.request_count == 1
    stats = [replica.stats() for replica in group]
    assert sum(s["hub_requests"] for s in stats) == 1
    assert sum(s["waits"] for s in stats) == 3
    assert sum(s["misses"] for s in stats) == 4


def test_a_dead_lock_holder_is_waited_for_a_bounded_time(
    hub: FakeHub, replicas: Callable[..., list[Replica]]
) -> None:
    (holder,) = replicas(1, wait_for_replica=30)  # its lock lasts 30 s
    others = replicas(2, wait_for_replica=0.5)
    hub.delay_next(60)  # the holder's request hangs...
    holder.ask(NEW)
    wait_until(lambda: hub.request_count >= 1)
    assert hub.request_count == 1
    holder.process.kill()  # ...and the holder dies holding the lock
    holder.process.wait()
    started = time.monotonic()
    for replica in others:
        replica.ask(NEW)
    answers = [replica.answer() for replica in others]
    elapsed = time.monotonic() - started
    assert answers == [{"user": "grace-hopper"}] * 2
    assert 0.45 <= elapsed < 5  # waited its bound, then asked the Hub itself
    assert hub.request_count in (2, 3)  # one each, or one after the other's answer landed


@pytest.mark.parametrize("fault", ["500", "network", "429"])
def test_stale_answers_across_processes_while_the_hub_cannot_answer(
    hub: FakeHub, replicas: Callable[..., list[Replica]], fault: str
) -> None:
    group = first, second = replicas(2, ttl=60, stale_ttl=60)
    assert first.whoami(TOKEN) == {"user": "ada-lovelace"}
    advance(group, 61)  # past ttl, inside stale_ttl
    if fault == "500":
        hub.fail_next(500)
    elif fault == "network":
        hub.drop_next(2)
    else:
        hub.rate_limit_next(retry_after=30)
    assert second.whoami(TOKEN) == {"user": "ada-lovelace"}
    stats = second.stats()
    assert (stats["stale"], stats["hub_requests"]) == (1, 1)


@pytest.mark.parametrize("verdict", ["revoke", "forbid"])
def test_never_stale_after_the_hub_refused_the_token(
    hub: FakeHub, replicas: Callable[..., list[Replica]], verdict: str
) -> None:
    group = first, second, third = replicas(3, ttl=60, stale_ttl=60)
    assert first.whoami(TOKEN) == {"user": "ada-lovelace"}
    getattr(hub, verdict)(TOKEN)
    advance(group, 61)
    refused = "unauthorized" if verdict == "revoke" else "forbidden"
    assert second.whoami(TOKEN)["error"] == refused
    hub.fail_next(500)
    assert third.whoami(TOKEN)["error"] == "server_error"  # not the stale answer
    assert third.stats()["stale"] == 0


def test_a_429_stops_every_process_until_the_reset(
    hub: FakeHub, replicas: Callable[..., list[Replica]]
) -> None:
    group = first, second, third = replicas(3, ttl=60, stale_ttl=60)
    assert first.whoami(TOKEN) == {"user": "ada-lovelace"}
    advance(group, 61)
    hub.rate_limit_next(retry_after=3)
    assert second.whoami(NEW)["error"] == "rate_limited"
    asked = hub.request_count
    # Another process asks nothing: known tokens are served stale, new ones wait.
    assert third.whoami(TOKEN) == {"user": "ada-lovelace"}
    limited = third.whoami(NEW)
    assert limited["error"] == "rate_limited"
    assert 0 < limited["retry_after"] <= 3
    assert first.whoami(NEW)["error"] == "rate_limited"
    assert hub.request_count == asked
    stats = [replica.stats() for replica in (first, second, third)]
    assert [s["rate_limited"] for s in stats] == [1, 0, 2]
    assert [s["backoff_seconds"] for s in stats] == [0, 3, 0]
    assert stats[2]["stale"] == 1
    advance(group, 3)
    assert third.whoami(NEW) == {"user": "grace-hopper"}
    assert hub.request_count == asked + 1


def test_an_exhausted_quota_stops_every_process_before_any_429(
    redis_server: redis_helper.RedisServer,
) -> None:
    # The Hub's window allows one request: its answer says RateLimit r=0;t=300.
    with FakeHub(rate_limit=1, rate_limit_window=300) as hub:
        hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
        hub.add_token(NEW, FakeUser(name="grace-hopper"))
        first, second = group = [Replica(redis_server.url, hub.url, {}) for _ in range(2)]
        try:
            for replica in group:
                replica.ready()
            assert first.whoami(TOKEN) == {"user": "ada-lovelace"}
            limited = second.whoami(NEW)
            assert limited["error"] == "rate_limited"
            assert 290 < limited["retry_after"] <= 300
            assert second.whoami(TOKEN) == {"user": "ada-lovelace"}  # cached answers still work
            assert hub.request_count == 1  # no 429 was ever needed
            assert first.stats()["backoff_seconds"] > 290
        finally:
            for replica in group:
                replica.stop()


def test_the_backoff_is_shared_the_moment_the_429_arrives(
    hub: FakeHub,
    replicas: Callable[..., list[Replica]],
    redis_server: redis_helper.RedisServer,
) -> None:
    # The first replica retries after the Hub's wait (3 attempts): the others must not wait
    # for that call to end to learn about the backoff.
    (patient,) = replicas(1, max_attempts=3)
    (other,) = replicas(1)
    hub.rate_limit_next(retry_after=2)  # HubClient's own wait before its retry: real seconds
    patient.ask(TOKEN)
    inspect = redis.Redis.from_url(redis_server.url)
    try:
        # The backoff reaches Redis while the patient replica still waits to retry.
        wait_until(lambda: bool(inspect.keys("hub_auth:backoff:*")))
    finally:
        inspect.close()
    assert hub.request_count == 1
    limited = other.whoami(NEW)
    assert limited["error"] == "rate_limited"
    assert hub.request_count == 1
    assert patient.answer() == {"user": "ada-lovelace"}  # its retry, after the wait
    assert hub.request_count == 2
    assert patient.stats()["backoff_seconds"] == 2
