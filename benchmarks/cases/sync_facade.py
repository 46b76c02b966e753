"""Case 3: what one ``HubAuthSync`` call costs next to the same call awaited on ``HubAuth``.

``HubAuthSync`` runs every call on one event loop of its own and one long-lived ``HubAuth``, so
its connection is kept alive between calls like the awaited side's: one long-lived ``HubAuth``
awaited in this thread's loop. Since issue 24 a script calling from one thread runs the
facade's loop in that thread (``run_until_complete``), with no hop to a loop thread; what is
left is starting and stopping the loop once per call. huggingface_hub's blocking
``HfApi.whoami`` (one shared keep-alive client) is what a sync script would use otherwise. For
comparison, the facade as it was before issue 10 (a new event loop, ``HubAuth``, session and
connection for each call) is emulated here: ``anyio.run`` of ``async with HubAuth(...)`` and
one ``whoami``. Targets (issue 24): the facade at most 1.25 times the awaited call and 0.7
times huggingface_hub, in three times the usual repetitions. The server is the lean responder
(canned keep-alive bytes in a process of its own), so the facade's overhead is not hidden
behind a server's. The TLS rows repeat the case against it serving https on loopback (see
``benchmarks/_tls.py``): kept alive, a connection pays the TLS handshake once; the old facade
paid it on every call. Client CPU is this process's, all its threads (the facade's loop thread
included).
"""

from __future__ import annotations

import asyncio
import sys

import anyio

from benchmarks._common import (
    BenchContext,
    Row,
    Sample,
    Stopwatch,
    cpus,
    interleaved,
    pairwise_ratio,
    ratio_row,
    skipped,
    timing_row,
    walls,
)
from benchmarks._summary import Figure

CASE = "3 sync facade"
_WARMUP = 5
# The targets of issue 24, checked on the plain-http rows.
FACADE_VS_AWAIT = 1.25
FACADE_VS_HF = 0.7


def run(ctx: BenchContext) -> list[Row]:
    try:
        from hub_auth._sync import HubAuthSync
    except ImportError as exc:
        note = f"not available yet (hub_auth._sync: {exc})"
        return [skipped(CASE, "HubAuthSync.whoami per call", "µs/call", note)]
    from huggingface_hub import HfApi

    from hub_auth import HubAuth, Ok

    calls = ctx.sizes.sync_calls
    token = ctx.tokens[0]
    api = HfApi(endpoint=ctx.client_url)
    facade = HubAuthSync(endpoint=ctx.client_url)

    def sync_batch(n: int) -> Sample:
        watch = Stopwatch()
        for _ in range(n):
            result = facade.whoami(token)
            if not isinstance(result, Ok):
                raise RuntimeError(f"HubAuthSync whoami failed: {result}")
        return watch.stop()

    def hf_batch(n: int) -> Sample:
        watch = Stopwatch()
        for _ in range(n):
            api.whoami(token=token)
        return watch.stop()

    async def old_facade_call() -> None:
        async with HubAuth(endpoint=ctx.client_url) as fresh:
            result = await fresh.whoami(token)
        if not isinstance(result, Ok):
            raise RuntimeError(f"old-facade whoami failed: {result}")

    def old_batch(n: int) -> Sample:
        watch = Stopwatch()
        for _ in range(n):
            anyio.run(old_facade_call)
        return watch.stop()

    with asyncio.Runner() as runner:

        async def make() -> HubAuth:
            return HubAuth(endpoint=ctx.client_url)

        auth = runner.run(make())

        async def async_batch(n: int) -> Sample:
            watch = Stopwatch()
            for _ in range(n):
                result = await auth.whoami(token)
                if not isinstance(result, Ok):
                    raise RuntimeError(f"hub_auth whoami failed: {result}")
            return watch.stop()

        try:
            runner.run(async_batch(_WARMUP))
            sync_batch(_WARMUP)
            hf_batch(_WARMUP)
            old_batch(_WARMUP)
            samples = interleaved(
                ctx.sizes.steady_reps,
                {
                    "async": lambda: runner.run(async_batch(calls)),
                    "sync": lambda: sync_batch(calls),
                    "hf": lambda: hf_batch(calls),
                    "old": lambda: old_batch(calls),
                },
            )
        finally:
            runner.run(auth.aclose())
            facade.close()

    per_call = 1e6 / calls
    timings = {name: walls(values) for name, values in samples.items()}
    cpu = {name: cpus(values) for name, values in samples.items()}
    # The targets are issue 24's, stated for plain http; the TLS rows are shown beside them.
    vs_await = None if ctx.tls else FACADE_VS_AWAIT
    vs_hf = None if ctx.tls else FACADE_VS_HF
    return [
        timing_row(
            CASE, "await HubAuth.whoami (long-lived client)", timings["async"], per_call, "µs/call"
        ),
        timing_row(
            CASE,
            "HubAuthSync.whoami (its loop run in this thread, keep-alive)",
            timings["sync"],
            per_call,
            "µs/call",
        ),
        timing_row(
            CASE,
            "huggingface_hub HfApi.whoami (blocking, keep-alive)",
            timings["hf"],
            per_call,
            "µs/call",
        ),
        timing_row(
            CASE,
            "old facade, emulated: anyio.run + new HubAuth (connection) per call",
            timings["old"],
            per_call,
            "µs/call",
        ),
        ratio_row(
            CASE,
            "HubAuthSync ÷ await HubAuth",
            pairwise_ratio(timings["sync"], timings["async"]),
            at_most=vs_await,
            headline="" if ctx.tls else Figure.FACADE_VS_AWAIT,
        ),
        ratio_row(
            CASE,
            "HubAuthSync ÷ huggingface_hub",
            pairwise_ratio(timings["sync"], timings["hf"]),
            at_most=vs_hf,
            headline="" if ctx.tls else Figure.FACADE_VS_HF,
        ),
        ratio_row(
            CASE,
            "old facade ÷ HubAuthSync (what keep-alive saves)",
            pairwise_ratio(timings["old"], timings["sync"]),
        ),
        timing_row(CASE, "client CPU: await HubAuth", cpu["async"], per_call, "µs/call"),
        timing_row(CASE, "client CPU: HubAuthSync", cpu["sync"], per_call, "µs/call"),
        timing_row(CASE, "client CPU: huggingface_hub", cpu["hf"], per_call, "µs/call"),
        ratio_row(
            CASE,
            "client CPU: HubAuthSync ÷ await HubAuth",
            pairwise_ratio(cpu["sync"], cpu["async"]),
        ),
        ratio_row(
            CASE,
            "client CPU: HubAuthSync ÷ huggingface_hub",
            pairwise_ratio(cpu["sync"], cpu["hf"]),
        ),
        *_tls_rows(ctx),
    ]


def _tls_rows(ctx: BenchContext) -> list[Row]:
    """The same rows over https, measured in a child process (none in that child itself)."""
    if ctx.tls:
        return []
    from benchmarks._tls import tls_variant

    return tls_variant(sys.modules[__name__], ctx)
