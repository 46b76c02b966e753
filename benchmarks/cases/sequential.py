"""Case 1: sequential whoami over one keep-alive connection, three clients side by side.

- hub_auth: one ``HubAuth(endpoint=...)``, ``await auth.whoami(token)``; the answer is parsed
  and validated into a ``UserInfo`` model, errors mapped to ``Err``.
- raw aiohttp, the floor: one ``ClientSession``, ``GET`` with the bearer header, read the body,
  ``json.loads`` it. Nothing can be cheaper with aiohttp.
- huggingface_hub: ``HfApi(endpoint=...).whoami(token=...)``. Its ``cache=`` flag defaults to
  ``False`` and is left so, so every call reaches the server as hub_auth's do; it reuses one
  keep-alive ``httpx`` client (``get_session()``) and returns the parsed ``dict``.

The server is the lean responder (``benchmarks/_responder.py``: canned keep-alive bytes, a
few µs a request, in another process), so wall time per call is mostly the client's own; the
client's CPU time per call (``time.process_time``, this process only) is what each library
itself costs. Targets: hub_auth at most 1.1 times raw aiohttp in wall time (issue 15) and 1.10
times in CPU (issue 24; it was 1.15). The TLS rows repeat the case against the responder
serving https on loopback (a ``trustme`` certificate; see ``benchmarks/_tls.py``): each
client keeps its connection alive, so the handshake is paid once and what remains is the cost
of encrypting and decrypting each request and answer.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from benchmarks._common import (
    BenchContext,
    Row,
    Sample,
    Stopwatch,
    cpus,
    interleaved,
    pairwise_ratio,
    ratio_row,
    timing_row,
    walls,
)
from benchmarks._summary import Figure

CASE = "1 sequential whoami"
# Issue 15's targets, on the plain-http rows.
WALL_VS_RAW = 1.1
CPU_VS_RAW = 1.10
_WARMUP = 20


def run(ctx: BenchContext) -> list[Row]:
    from huggingface_hub import HfApi

    from hub_auth import HubAuth, Ok

    calls = ctx.sizes.sequential_calls
    token = ctx.tokens[0]
    url = ctx.client_url + "/api/whoami-v2"
    headers = {"authorization": f"Bearer {token}"}
    api = HfApi(endpoint=ctx.client_url)

    with asyncio.Runner() as runner:

        async def make() -> tuple[HubAuth, aiohttp.ClientSession]:
            return HubAuth(endpoint=ctx.client_url), aiohttp.ClientSession()

        auth, session = runner.run(make())

        async def hub_auth_batch(n: int) -> Sample:
            watch = Stopwatch()
            for _ in range(n):
                result = await auth.whoami(token)
                if not isinstance(result, Ok):
                    raise RuntimeError(f"hub_auth whoami failed: {result}")
            return watch.stop()

        async def raw_batch(n: int) -> Sample:
            watch = Stopwatch()
            for _ in range(n):
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"raw whoami failed: {response.status}")
                json.loads(body)
            return watch.stop()

        def hf_batch(n: int) -> Sample:
            watch = Stopwatch()
            for _ in range(n):
                api.whoami(token=token)
            return watch.stop()

        try:
            runner.run(hub_auth_batch(_WARMUP))
            runner.run(raw_batch(_WARMUP))
            hf_batch(_WARMUP)
            samples = interleaved(
                ctx.sizes.reps,
                {
                    "hub_auth": lambda: runner.run(hub_auth_batch(calls)),
                    "raw": lambda: runner.run(raw_batch(calls)),
                    "hf": lambda: hf_batch(calls),
                },
            )
        finally:

            async def close() -> None:
                await auth.aclose()
                await session.close()

            runner.run(close())

    per_call = 1e6 / calls
    wall = {name: walls(values) for name, values in samples.items()}
    cpu = {name: cpus(values) for name, values in samples.items()}
    # The targets were set for plain http; the TLS rows are shown beside them.
    vs_raw = None if ctx.tls else WALL_VS_RAW
    cpu_vs_raw = None if ctx.tls else CPU_VS_RAW
    vs_hf = None if ctx.tls else 1.8
    return [
        timing_row(
            CASE, "raw aiohttp GET + json.loads (the floor)", wall["raw"], per_call, "µs/call"
        ),
        timing_row(CASE, "huggingface_hub HfApi.whoami", wall["hf"], per_call, "µs/call"),
        timing_row(CASE, "hub_auth HubAuth.whoami", wall["hub_auth"], per_call, "µs/call"),
        ratio_row(
            CASE,
            "hub_auth ÷ raw aiohttp",
            pairwise_ratio(wall["hub_auth"], wall["raw"]),
            at_most=vs_raw,
        ),
        ratio_row(
            CASE,
            "huggingface_hub ÷ hub_auth (speed-up)",
            pairwise_ratio(wall["hf"], wall["hub_auth"]),
            at_least=vs_hf,
        ),
        ratio_row(
            CASE,
            "huggingface_hub ÷ raw aiohttp (the most any aiohttp client could gain)",
            pairwise_ratio(wall["hf"], wall["raw"]),
        ),
        timing_row(CASE, "client CPU: raw aiohttp", cpu["raw"], per_call, "µs/call"),
        timing_row(CASE, "client CPU: huggingface_hub", cpu["hf"], per_call, "µs/call"),
        timing_row(CASE, "client CPU: hub_auth", cpu["hub_auth"], per_call, "µs/call"),
        ratio_row(
            CASE,
            "client CPU: hub_auth ÷ raw aiohttp",
            pairwise_ratio(cpu["hub_auth"], cpu["raw"]),
            at_most=cpu_vs_raw,
            headline="" if ctx.tls else Figure.WHOAMI_CPU,
        ),
        ratio_row(
            CASE,
            "client CPU: huggingface_hub ÷ hub_auth",
            pairwise_ratio(cpu["hf"], cpu["hub_auth"]),
        ),
        *_tls_rows(ctx),
    ]


def _tls_rows(ctx: BenchContext) -> list[Row]:
    """The same rows over https, measured in a child process (none in that child itself)."""
    if ctx.tls:
        return []
    from benchmarks._tls import tls_variant

    return tls_variant(sys.modules[__name__], ctx)
