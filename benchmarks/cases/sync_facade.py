"""Case 3: what one ``HubAuthSync`` call costs next to the same call awaited on ``HubAuth``.

Each facade call runs the coroutine in a new event loop (``anyio.run``) on a fork of the
client with a session of its own, closed before the call returns: a new loop, a new aiohttp
session and a new TCP connection every time. The async side is one long-lived ``HubAuth``
reusing a keep-alive connection. huggingface_hub's blocking ``HfApi.whoami`` (one shared
keep-alive client) is shown too: it is what a sync script would use otherwise.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks._common import (
    BenchContext,
    Row,
    interleaved,
    pairwise_ratio,
    ratio_row,
    skipped,
    timing_row,
)

CASE = "3 sync facade"
_WARMUP = 5


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
    api = HfApi(endpoint=ctx.hub_url)
    facade = HubAuthSync(endpoint=ctx.hub_url)

    def sync_batch(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            result = facade.whoami(token)
            if not isinstance(result, Ok):
                raise RuntimeError(f"HubAuthSync whoami failed: {result}")
        return time.perf_counter() - start

    def hf_batch(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            api.whoami(token=token)
        return time.perf_counter() - start

    with asyncio.Runner() as runner:

        async def make() -> HubAuth:
            return HubAuth(endpoint=ctx.hub_url)

        auth = runner.run(make())

        async def async_batch(n: int) -> float:
            start = time.perf_counter()
            for _ in range(n):
                result = await auth.whoami(token)
                if not isinstance(result, Ok):
                    raise RuntimeError(f"hub_auth whoami failed: {result}")
            return time.perf_counter() - start

        try:
            runner.run(async_batch(_WARMUP))
            sync_batch(_WARMUP)
            hf_batch(_WARMUP)
            timings = interleaved(
                ctx.sizes.reps,
                {
                    "async": lambda: runner.run(async_batch(calls)),
                    "sync": lambda: sync_batch(calls),
                    "hf": lambda: hf_batch(calls),
                },
            )
        finally:
            runner.run(auth.aclose())
            facade.close()

    per_call = 1e6 / calls
    return [
        timing_row(
            CASE, "await HubAuth.whoami (long-lived client)", timings["async"], per_call, "µs/call"
        ),
        timing_row(
            CASE,
            "HubAuthSync.whoami (new loop + connection per call)",
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
        ratio_row(
            CASE, "HubAuthSync ÷ await HubAuth", pairwise_ratio(timings["sync"], timings["async"])
        ),
        ratio_row(
            CASE, "HubAuthSync ÷ huggingface_hub", pairwise_ratio(timings["sync"], timings["hf"])
        ),
    ]
