"""Case 2: whoami for many distinct tokens at once (a service validating a burst of callers).

- hub_auth: one ``HubAuth`` (default pool of 100 connections), ``asyncio.gather`` of one
  ``whoami(token)`` per token.
- raw aiohttp: one ``ClientSession`` with the same 100-connection pool, ``gather`` of
  ``GET`` + ``json.loads``.
- huggingface_hub: ``HfApi.whoami(token=...)`` mapped over a thread pool (32 threads by
  default), its usual way to run blocking calls concurrently; its shared ``httpx`` client keeps
  its default pool.

Clients and pools persist across repetitions (a warm service), and each repetition is timed
from the first request to the last answer. The server is the lean responder (canned bytes in
a process of its own), so the clients, not the server, are the bottleneck; the client CPU time
per token (this process, all threads) shows each library's own cost. Targets (issue 15):
hub_auth at most 1.1 times raw aiohttp, and at least 4 times faster than the thread pool.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

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

CASE = "2 concurrent tokens"
_POOL = 100


def run(ctx: BenchContext) -> list[Row]:
    from huggingface_hub import HfApi

    from hub_auth import HubAuth, Ok

    count = ctx.sizes.concurrent_tokens
    threads = ctx.sizes.hf_threads
    tokens = list(ctx.tokens[:count])
    if len(tokens) < count:
        raise RuntimeError(f"the responder has {len(tokens)} tokens, case 2 needs {count}")
    url = ctx.client_url + "/api/whoami-v2"
    api = HfApi(endpoint=ctx.client_url)

    with asyncio.Runner() as runner, ThreadPoolExecutor(threads) as pool:

        async def make() -> tuple[HubAuth, aiohttp.ClientSession]:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=_POOL))
            return HubAuth(endpoint=ctx.client_url, pool_limit=_POOL), session

        auth, session = runner.run(make())

        async def hub_auth_one(token: str) -> None:
            result = await auth.whoami(token)
            if not isinstance(result, Ok):
                raise RuntimeError(f"hub_auth whoami failed: {result}")

        async def raw_one(token: str) -> None:
            headers = {"authorization": f"Bearer {token}"}
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"raw whoami failed: {response.status}")
            json.loads(body)

        async def hub_auth_burst() -> Sample:
            watch = Stopwatch()
            await asyncio.gather(*(hub_auth_one(token) for token in tokens))
            return watch.stop()

        async def raw_burst() -> Sample:
            watch = Stopwatch()
            await asyncio.gather(*(raw_one(token) for token in tokens))
            return watch.stop()

        def hf_one(token: str) -> None:
            api.whoami(token=token)

        def hf_burst() -> Sample:
            watch = Stopwatch()
            for _ in pool.map(hf_one, tokens):
                pass
            return watch.stop()

        try:
            # Warm-up: open the pools and start the threads.
            runner.run(hub_auth_burst())
            runner.run(raw_burst())
            hf_burst()
            samples = interleaved(
                ctx.sizes.reps,
                {
                    "hub_auth": lambda: runner.run(hub_auth_burst()),
                    "raw": lambda: runner.run(raw_burst()),
                    "hf": hf_burst,
                },
            )
        finally:

            async def close() -> None:
                await auth.aclose()
                await session.close()

            runner.run(close())

    label = f"{count:,} tokens"
    wall = {name: walls(values) for name, values in samples.items()}
    cpu = {name: cpus(values) for name, values in samples.items()}
    per_token = 1e6 / count
    return [
        timing_row(CASE, f"raw aiohttp, gather ({label})", wall["raw"], 1e3, "ms"),
        timing_row(
            CASE, f"huggingface_hub, {threads}-thread pool ({label})", wall["hf"], 1e3, "ms"
        ),
        timing_row(CASE, f"hub_auth, gather ({label})", wall["hub_auth"], 1e3, "ms"),
        ratio_row(
            CASE,
            "hub_auth ÷ raw aiohttp",
            pairwise_ratio(wall["hub_auth"], wall["raw"]),
            at_most=1.1,
        ),
        ratio_row(
            CASE,
            "huggingface_hub thread pool ÷ hub_auth (speed-up)",
            pairwise_ratio(wall["hf"], wall["hub_auth"]),
            at_least=4,
        ),
        ratio_row(
            CASE,
            "huggingface_hub ÷ raw aiohttp (the most any aiohttp client could gain)",
            pairwise_ratio(wall["hf"], wall["raw"]),
        ),
        timing_row(CASE, "client CPU: raw aiohttp", cpu["raw"], per_token, "µs/token"),
        timing_row(CASE, "client CPU: huggingface_hub", cpu["hf"], per_token, "µs/token"),
        timing_row(CASE, "client CPU: hub_auth", cpu["hub_auth"], per_token, "µs/token"),
        ratio_row(
            CASE, "client CPU: hub_auth ÷ raw aiohttp", pairwise_ratio(cpu["hub_auth"], cpu["raw"])
        ),
    ]
