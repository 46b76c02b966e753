"""Load: 10,000 ``whoami`` calls through one HubAuth against a FakeHub failing 5% of them.

    python -m benchmarks.load               # 10,000 calls, 200 in flight, 5% 503s
    python -m benchmarks.load --smoke       # a few hundred calls, for CI
    python -m benchmarks.load --calls 50000 --concurrency 500 --pool-limit 50

FakeHub runs in a separate process (this module, ``--serve``), so the server never shares
the client's GIL or event loop, with ``set_failure_rate(503, rate)``. In front of it, in the
same process, a TCP relay counts the connections the client holds open at any instant:
that count is exact, not sampled, and is what "open connections never above the pool limit"
is checked against.

The client side: one ``HubAuth`` (default retries: 3 attempts within 20 s), at most
``--concurrency`` calls in flight (an ``asyncio.Semaphore``), tokens of ``--users`` users in
turn. It reports every outcome (``Ok`` or the ``ErrorKind`` of the ``Err``), exceptions that
escaped (there must be none), the relay's peak of open connections against the pool limit,
the client's RSS after a warm-up and at the end (memory must stay flat), wall time and
calls per second. The exit status is 1 when an exception escaped, a connection beyond the
pool limit was seen, or memory grew by more than ``--max-rss-growth`` MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadResult", "main", "run_load"]

_READY = "READY "
_STATS = "STATS "
_START_TIMEOUT = 30.0


# -- the server process ------------------------------------------------------------------------


@dataclass
class _RelayStats:
    open: int = 0
    peak: int = 0
    accepted: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _serve(users: int, failure_rate: float, seed: int) -> None:
    """Run FakeHub behind a counting relay until standard input closes, then print stats."""
    from hub_auth.testing import FakeHub, make_token

    stats = _RelayStats()
    async with FakeHub(port=0) as hub:
        for index in range(users):
            hub.add_token(make_token(f"load{index}"), name=f"load-user-{index}")
        hub.set_failure_rate(503, failure_rate, seed=seed)

        async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            stats.accepted += 1
            stats.open += 1
            stats.peak = max(stats.peak, stats.open)
            try:
                hub_r, hub_w = await asyncio.open_connection("127.0.0.1", hub.port)
            except OSError:
                stats.open -= 1
                client_w.close()
                return
            try:
                await asyncio.gather(_pipe(client_r, hub_w), _pipe(hub_r, client_w))
            finally:
                stats.open -= 1
                for writer in (client_w, hub_w):
                    writer.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await writer.wait_closed()

        server = await asyncio.start_server(relay, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"{_READY}{port}", flush=True)
        # The parent closes our standard input when it is done (or when it dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()
        requests = hub.request_count
    print(
        _STATS
        + json.dumps(
            {"peak_connections": stats.peak, "connections": stats.accepted, "requests": requests}
        ),
        flush=True,
    )


class _ServerProcess:
    """``python -m benchmarks.load --serve``: FakeHub and the relay, in a child process."""

    def __init__(self, users: int, failure_rate: float, seed: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.load",
                "--serve",
                "--users",
                str(users),
                "--failure-rate",
                str(failure_rate),
                "--seed",
                str(seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""

    async def start(self) -> None:
        assert self._process.stdout is not None
        stdout = self._process.stdout
        line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), _START_TIMEOUT)
        if not line.startswith(_READY):
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"the FakeHub process did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line[len(_READY) :])}"

    def stop(self) -> dict[str, int]:
        """Close its standard input, wait for it, and return its statistics."""
        process = self._process
        try:
            # Writing nothing and closing standard input is the child's signal to stop.
            out, _ = process.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        for line in out.splitlines():
            if line.startswith(_STATS):
                stats: dict[str, int] = json.loads(line[len(_STATS) :])
                return stats
        raise RuntimeError("the FakeHub process printed no statistics")


# -- the client --------------------------------------------------------------------------------


def _rss_mib() -> float:
    """This process's resident memory now (VmRSS), or its peak where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class LoadResult:
    """What one load run measured."""

    calls: int
    concurrency: int
    pool_limit: int
    failure_rate: float
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0
    exceptions: collections.Counter[str] = field(default_factory=collections.Counter)
    peak_connections: int = 0
    connections: int = 0
    requests: int = 0
    rss_start: float = 0.0
    rss_warm: float = 0.0
    rss_end: float = 0.0
    rss_peak: float = 0.0
    wall: float = 0.0

    @property
    def ok(self) -> int:
        return self.outcomes["Ok"]

    @property
    def rss_growth(self) -> float:
        return self.rss_end - self.rss_warm


async def _drive(
    endpoint: str,
    tokens: Sequence[str],
    result: LoadResult,
    warmup: int,
) -> None:
    from hub_auth import Err, HubAuth, Ok

    semaphore = asyncio.Semaphore(result.concurrency)
    sample_every = max(result.calls // 20, 1)
    done = 0

    async def one(index: int) -> None:
        nonlocal done
        try:
            match await auth.whoami(tokens[index % len(tokens)]):
                case Ok():
                    result.outcomes["Ok"] += 1
                case Err(error):
                    result.outcomes[f"Err({error.kind.value})"] += 1
                case other:
                    result.exceptions[f"not a Result: {type(other).__name__}"] += 1
        except Exception as exc:  # the point of the run: count, never crash
            result.exceptions[type(exc).__name__] += 1
        finally:
            semaphore.release()
            done += 1
            if done % sample_every == 0:
                result.rss_peak = max(result.rss_peak, _rss_mib())

    async def run(count: int) -> None:
        tasks: set[asyncio.Task[None]] = set()
        for index in range(count):
            await semaphore.acquire()
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)

    class RetryCounter(logging.Handler):
        """Counts the retries HubClient logs (one DEBUG line on ``hub_auth`` for each)."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("whoami attempt "):
                result.retries += 1

    hub_logger = logging.getLogger("hub_auth")
    counter, level = RetryCounter(logging.DEBUG), hub_logger.level
    hub_logger.addHandler(counter)
    hub_logger.setLevel(logging.DEBUG)
    async with HubAuth(endpoint=endpoint, read_env=False, pool_limit=result.pool_limit) as auth:
        # Warm-up: sessions, connections, pydantic's validators and the allocator settle first,
        # so that the memory figure after it is a fair baseline.
        await run(warmup)
        result.outcomes.clear()
        result.exceptions.clear()
        result.retries = 0
        gc.collect()
        result.rss_warm = result.rss_peak = _rss_mib()
        started = time.perf_counter()
        await run(result.calls)
        result.wall = time.perf_counter() - started
    gc.collect()
    result.rss_end = _rss_mib()
    result.rss_peak = max(result.rss_peak, result.rss_end)
    hub_logger.removeHandler(counter)
    hub_logger.setLevel(level)


async def run_load(
    *,
    calls: int = 10_000,
    concurrency: int = 200,
    pool_limit: int = 100,
    failure_rate: float = 0.05,
    users: int = 100,
    seed: int = 6,
) -> LoadResult:
    """Run the load against a FakeHub in a child process and return the figures."""
    from hub_auth.testing import make_token

    result = LoadResult(calls, concurrency, pool_limit, failure_rate)
    result.rss_start = _rss_mib()
    tokens = [make_token(f"load{index}") for index in range(users)]
    server = _ServerProcess(users, failure_rate, seed)
    try:
        await server.start()
        await _drive(server.url, tokens, result, warmup=min(max(calls // 10, 50), 1000))
    finally:
        stats = server.stop()
    result.peak_connections = stats["peak_connections"]
    result.connections = stats["connections"]
    result.requests = stats["requests"]
    return result


def _table(result: LoadResult) -> str:
    rows: list[tuple[str, str]] = []
    for name, count in sorted(result.outcomes.items(), key=lambda item: (item[0] != "Ok", item)):
        rows.append((name, f"{count:,}"))
    rows.append(("retries scheduled", f"{result.retries:,}"))
    escaped = sum(result.exceptions.values())
    detail = ", ".join(f"{name} x{count}" for name, count in result.exceptions.items())
    rows.append(("unhandled exceptions", f"{escaped}" + (f" ({detail})" if detail else "")))
    rows.append(("requests FakeHub answered", f"{result.requests:,} (warm-up included)"))
    rows.append(
        (
            "open connections, peak",
            f"{result.peak_connections} (pool limit {result.pool_limit}; "
            f"{result.connections} opened in all)",
        )
    )
    rows.append(
        (
            "client RSS, MiB",
            f"start {result.rss_start:.1f}, after warm-up {result.rss_warm:.1f}, "
            f"end {result.rss_end:.1f}, peak {result.rss_peak:.1f} "
            f"(growth {result.rss_growth:+.1f})",
        )
    )
    rows.append(("wall time", f"{result.wall:.2f} s"))
    rows.append(("calls/s", f"{result.calls / result.wall:,.0f}" if result.wall else "-"))
    width = max(len(name) for name, _ in rows)
    header = (
        f"hub_auth load: {result.calls:,} whoami calls, {result.concurrency} in flight, "
        f"{result.failure_rate:.0%} injected 503s, pool limit {result.pool_limit}"
    )
    lines = [header, "-" * len(header)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--calls", type=int, default=10_000, help="whoami calls (10,000)")
    parser.add_argument("--concurrency", type=int, default=200, help="calls in flight (200)")
    parser.add_argument("--pool-limit", type=int, default=100, help="HubAuth pool_limit (100)")
    parser.add_argument(
        "--failure-rate", type=float, default=0.05, help="share of 503 answers (0.05)"
    )
    parser.add_argument("--users", type=int, default=100, help="distinct tokens (100)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the failure sampling")
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=20.0,
        help="MiB the client may grow after warm-up before the run fails (20)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run (300 calls, 50 in flight)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.load``."""
    args = _parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.users, args.failure_rate, args.seed))
        return 0
    if args.smoke:
        args.calls, args.concurrency = min(args.calls, 300), min(args.concurrency, 50)
        args.pool_limit = min(args.pool_limit, 20)
    result = asyncio.run(
        run_load(
            calls=args.calls,
            concurrency=args.concurrency,
            pool_limit=args.pool_limit,
            failure_rate=args.failure_rate,
            users=args.users,
            seed=args.seed,
        )
    )
    print(_table(result))
    if args.json:
        figures: dict[str, Any] = {
            "calls": result.calls,
            "outcomes": dict(result.outcomes),
            "exceptions": dict(result.exceptions),
            "retries": result.retries,
            "requests": result.requests,
            "peak_connections": result.peak_connections,
            "pool_limit": result.pool_limit,
            "rss_mib": {"warm": result.rss_warm, "end": result.rss_end, "peak": result.rss_peak},
            "wall_s": result.wall,
            "calls_per_s": result.calls / result.wall if result.wall else None,
        }
        print(json.dumps(figures))
    failures = []
    if sum(result.exceptions.values()):
        failures.append("exceptions escaped")
    if sum(result.outcomes.values()) != result.calls:
        failures.append("some calls have no outcome")
    if result.peak_connections > result.pool_limit:
        failures.append("more connections than the pool limit")
    if result.rss_growth > args.max_rss_growth:
        failures.append(f"memory grew by {result.rss_growth:.1f} MiB")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
