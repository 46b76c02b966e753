"""Service at scale: uvicorn with 4 workers, one RedisCache, a Hub with a per-window quota.

    python -m benchmarks.service            # 20,000 requests over 2,000 tokens, 10 s outage
    python -m benchmarks.service --smoke    # a small size for CI (about half a minute)
    python -m benchmarks.service --redis-cluster [--smoke]   # on a 6-node Redis Cluster

Everything runs on 127.0.0.1 and stops by itself: a ``redis-server`` on a free port, FakeHub
in a thread of this process with a per-IP fixed-window quota like the Hub's (every worker
shares the one egress IP), and ``uvicorn examples.fastapi_app:app --workers 4`` with
``EXAMPLE_REDIS_URL`` (RedisCache, ``stale_ttl`` on). The load is bounded: at most
``--concurrency`` requests in flight to ``/me``, new tokens arriving throughout. The phases:

- ``warm``: normal traffic;
- ``outage``: the Hub answers 503 to everything for ``--outage`` seconds (tokens seen before
  must still get 200 from stale-if-error; new tokens get 503);
- ``429 storm``: the Hub answers 429 (``Retry-After``) to the next requests: one replica's
  429 must stop them all (no request reaches the Hub during the backoff);
- ``redis restart``: redis-server stops and starts again a second later; the app must recover
  without a restart;
- ``after``: normal traffic again, once RedisCache tries Redis again (5 s after a failure).

With ``--redis-cluster`` the cache is a 6-node Redis Cluster (3 masters, 3 replicas, 1 s node
timeout; ``tests/_redis_cluster.py``) reached through ``redis.asyncio.RedisCluster``
(``benchmarks/_cluster_app.py``), and a phase comes before the restart:

- ``master failover``: one master is killed (SIGKILL); its replica takes over (the takeover
  time is measured by polling the cluster); every request must still be answered (200);

and ``redis restart`` stops and restarts every node of the cluster.

"ideal" is what a perfect shared cache would ask the Hub: once per token and ttl (less a
second: Redis keeps whole seconds). The target is Hub requests <= ideal + 1% in the normal
phases.

It reports requests/s, p50/p99 latency, Hub requests and statuses per phase, and checks the
targets; the exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from hub_auth.testing import FakeHub
from tests._redis_cluster import LocalCluster, start_cluster
from tests.redis_server import RedisServer

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
TTL = 5
REDIS_BACKOFF = 5.0
IDEAL_TTL = TTL - 1
"""What an ideal cache keeps an answer: Redis keeps whole seconds from a truncated clock."""
_STORM = 10_000
_FAILOVER_KEY = "hub_auth:failover"
"""The master that serves this key's slot is the one killed (a third of the tokens' entries)."""


@dataclass(frozen=True)
class Size:
    requests: int
    tokens: int
    outage: float
    concurrency: int
    storm_wait: float
    failover: float  # seconds of the master failover phase (--redis-cluster)


SIZES = {
    "full": Size(
        requests=20_000, tokens=2_000, outage=10.0, concurrency=64, storm_wait=5.0, failover=6.0
    ),
    "smoke": Size(
        requests=1_500, tokens=150, outage=2.0, concurrency=32, storm_wait=2.0, failover=4.0
    ),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Phase:
    name: str
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    seen_5xx: int = 0  # 5xx answers for tokens validated before the outage
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    hub_requests: int = 0
    new_tokens: int = 0
    ideal: int = 0  # Hub requests a perfect shared cache would make (one per token and ttl)

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Load:
    """Requests to ``/me`` with tokens that arrive over the run (bounded concurrency)."""

    def __init__(self, url: str, tokens: Sequence[str], total: int, concurrency: int) -> None:
        self.url = url + "/me"
        self.tokens = tokens
        self.total = total
        self.concurrency = concurrency
        self.sent = 0
        self.introduced = 0  # tokens[:introduced] have been used
        self.validated: set[str] = set()  # tokens that got a 200 before the outage
        self.ideal_until: dict[str, float] = {}
        self.rng = random.Random(14)

    def _pick(self) -> str:
        # New tokens arrive in proportion to the requests sent, so every phase has some.
        due = max(1, len(self.tokens) * (self.sent + 1) // self.total)
        if self.introduced < min(due, len(self.tokens)):
            self.introduced += 1
            return self.tokens[self.introduced - 1]
        return self.tokens[self.rng.randrange(self.introduced)]

    async def run(
        self,
        session: aiohttp.ClientSession,
        phase: Phase,
        count: int,
        *,
        min_seconds: float = 0.0,
        max_seconds: float = float("inf"),
        remember: bool = False,
    ) -> None:
        started = time.monotonic()
        introduced_before = self.introduced
        budget = count

        async def one(token: str) -> None:
            was_validated = token in self.validated
            if self.ideal_until.get(token, 0.0) <= time.monotonic():
                phase.ideal += 1
                self.ideal_until[token] = time.monotonic() + IDEAL_TTL
            begin = time.perf_counter()
            try:
                async with session.get(
                    self.url, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 599  # no answer at all
            phase.latencies.append(time.perf_counter() - begin)
            phase.statuses[status] += 1
            phase.requests += 1
            if status >= 500 and was_validated:
                phase.seen_5xx += 1
            if remember and status == 200:
                self.validated.add(token)

        in_flight: set[asyncio.Task[None]] = set()
        while (budget > 0 or time.monotonic() - started < min_seconds) and (
            time.monotonic() - started < max_seconds
        ):
            while len(in_flight) >= self.concurrency:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            token = self._pick() if budget > 0 else self.rng.choice(sorted(self.validated))
            self.sent += budget > 0
            budget -= 1
            in_flight.add(asyncio.create_task(one(token)))
            if budget <= 0 and min_seconds:
                await asyncio.sleep(0.005)  # past the count: keep the phase going, gently
        if in_flight:
            await asyncio.wait(in_flight)
        phase.seconds = time.monotonic() - started
        phase.new_tokens = self.introduced - introduced_before


def _start_app(
    hub_url: str, redis: RedisServer | LocalCluster, port: int, secret: str
) -> subprocess.Popen[bytes]:
    if isinstance(redis, LocalCluster):
        module, where = "benchmarks._cluster_app:app", {"EXAMPLE_REDIS_CLUSTER": redis.address}
    else:
        module, where = "examples.fastapi_app:app", {"EXAMPLE_REDIS_URL": redis.url}
    env = {
        **os.environ,
        **where,
        "HF_ENDPOINT": hub_url,
        "HUB_AUTH_CACHE_SECRET": secret,
        "EXAMPLE_CACHE_TTL": str(TTL),  # short, so the outage sees expired entries
        "EXAMPLE_STALE_TTL": "300",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    }
    argv = [sys.executable, "-m", "uvicorn", module]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    argv += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


async def _wait_for_app(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(url + "/") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("uvicorn did not start within 60 s")


async def _run(
    size: Size,
    hub: FakeHub,
    redis: RedisServer | LocalCluster,
    app_url: str,
    timers: list[threading.Timer],
) -> list[Phase]:
    tokens = [hub.add_token(name=f"user{index}") for index in range(size.tokens)]
    load = Load(app_url, tokens, size.requests, size.concurrency)
    share = size.requests // 5
    phases: list[Phase] = []
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=size.concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await _wait_for_app(session, app_url)

        async def phase(
            name: str,
            before: Callable[[], None] | None = None,
            count: int = share,
            **options: float | bool,
        ) -> Phase:
            current = Phase(name)
            if before is not None:
                before()
            asked = hub.request_count
            await load.run(session, current, count, **options)  # type: ignore[arg-type]
            current.hub_requests = hub.request_count - asked
            phases.append(current)
            return current

        await phase("warm", remember=True)
        await asyncio.sleep(TTL + 0.1)  # every entry is past its ttl: only stale ones are left
        await phase(
            "outage",
            lambda: hub.set_failure_rate(503, 1.0),
            min_seconds=size.outage,
            max_seconds=size.outage,  # what it did not send, the last phase does
        )
        hub.set_failure_rate(503, 0.0)

        sent: list[int] = []

        def end_storm() -> None:
            # Before the wait is over: what came after it would be a new storm.
            sent.append(_STORM - hub.pending_faults)
            hub.clear_faults()

        def storm() -> None:
            hub.rate_limit_next(count=_STORM, retry_after=size.storm_wait)
            threading.Timer(size.storm_wait * 0.8, end_storm).start()

        storm_phase = await phase("429 storm", storm, min_seconds=size.storm_wait)
        storm_phase.name = f"429 storm ({sent[0]} 429s sent)"

        if isinstance(redis, LocalCluster):
            cluster = redis
            took: list[float] = []

            watch: list[threading.Thread] = []

            def fail_over() -> None:
                dead = cluster.kill_master_of(_FAILOVER_KEY)
                watch.append(
                    threading.Thread(
                        target=lambda: took.append(cluster.wait_for_takeover(dead, _FAILOVER_KEY))
                    )
                )
                watch[0].start()

            failover = await phase("master failover", fail_over, min_seconds=size.failover)
            await asyncio.to_thread(watch[0].join)
            failover.name = f"master failover (takeover {took[0]:.1f} s)"
            # Like the restart: each worker leaves Redis alone for `backoff` after a failure.
            await asyncio.sleep(REDIS_BACKOFF)

        def restart() -> None:
            redis.stop()
            # A cluster's nodes come back with their nodes.conf and rejoin (heal waits for it).
            again = redis.heal if isinstance(redis, LocalCluster) else redis.start
            timers.append(threading.Timer(1.0, again))
            timers[-1].start()

        await phase("redis restart", restart, min_seconds=2.0)
        if isinstance(redis, LocalCluster):  # until every node is back and the cluster ok
            await asyncio.to_thread(timers[-1].join)
        # RedisCache leaves a failed Redis alone for `backoff` (5 s) before trying it again;
        # meanwhile every miss asks the Hub (see the restart phase's Hub requests).
        await asyncio.sleep(REDIS_BACKOFF)
        await phase("after", count=size.requests - load.sent)
    return phases


def _storm_429s(phase: Phase) -> int:
    return int(phase.name.split("(")[1].split()[0])


def _report(size: Size, phases: list[Phase], *, cluster: bool) -> bool:
    where = " on a 6-node Redis Cluster" if cluster else ""
    print(
        f"\n{WORKERS} uvicorn workers, RedisCache{where} (ttl {TTL} s, stale_ttl 300 s), FakeHub;"
        f" {size.requests} requests over {size.tokens} tokens, {size.concurrency} in flight"
    )
    header = f"{'phase':<32} {'req':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'hub':>5} "
    print(header + f"{'ideal':>5} {'new tok':>7}  statuses")
    for phase in phases:
        rate = phase.requests / phase.seconds if phase.seconds else 0.0
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(phase.statuses.items()))
        print(
            f"{phase.name:<32} {phase.requests:>6} {rate:>7.0f} {phase.percentile(0.5) * 1e3:>7.1f}"
            f" {phase.percentile(0.99) * 1e3:>8.1f} {phase.hub_requests:>5} {phase.ideal:>5}"
            f" {phase.new_tokens:>7}"
            f"  {statuses}"
        )
    by_name = {phase.name.split(" (")[0]: phase for phase in phases}
    normal = [by_name["warm"], by_name["after"]]
    allowed = sum(p.ideal for p in normal) * 1.01 + 1
    checks = {
        "hub requests <= ideal + 1% (one per token and ttl; warm, after)": sum(
            p.hub_requests for p in normal
        )
        <= allowed,
        "no 5xx for tokens validated before the outage": all(
            p.seen_5xx == 0 for p in (by_name["outage"], by_name["429 storm"])
        ),
        f"429s sent <= {size.concurrency} (the requests in flight when the first came)": (
            _storm_429s(by_name["429 storm"]) <= size.concurrency
        ),
        "recovered after the redis restart (only 200/401 after it)": set(by_name["after"].statuses)
        <= {200, 401},
    }
    if "master failover" in by_name:
        checks["every request answered during the master failover (only 200/401)"] = set(
            by_name["master failover"].statuses
        ) <= {200, 401}
    print()
    for name, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    return all(checks.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a small size for CI")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="a 6-node Redis Cluster instead of one redis-server, and a master failover phase",
    )
    options = parser.parse_args(argv)
    size = SIZES["smoke" if options.smoke else "full"]
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="hub_auth_service_") as workdir:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        redis: RedisServer | LocalCluster
        if options.redis_cluster:
            redis = start_cluster(binary, Path(workdir))  # the tests' cluster
        else:
            redis = RedisServer(binary, Path(workdir))  # the tests' server: restartable, one port
            redis.start()
        timers: list[threading.Timer] = []
        # A quota well above the tokens: the storm, not the window, is what sends 429s.
        hub = FakeHub(rate_limit=size.tokens * 20, rate_limit_window=300)
        hub.start_in_thread()
        app_port = _free_port()
        app = _start_app(hub.url, redis, app_port, secret)
        try:
            phases = asyncio.run(_run(size, hub, redis, f"http://127.0.0.1:{app_port}", timers))
        finally:
            app.terminate()
            try:
                app.wait(timeout=20)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
            hub.stop_thread()
            for timer in timers:  # the restart may still be starting redis-server
                timer.cancel()
                timer.join()
            redis.stop()
    return 0 if _report(size, phases, cluster=options.redis_cluster) else 1


if __name__ == "__main__":
    sys.exit(main())
