"""The process case 6 measures: a ``HubAuth`` whose ``MemoryCache`` holds N validations.

``python -m benchmarks.cases._memory_child HUB_URL TOKENS_FILE`` validates every token in the
file (one per line) through ``HubAuth.whoami`` against FakeHub, 100 at a time, keeps the
client and its cache alive, and prints JSON: resident memory now and at its peak, in bytes,
and how many entries the cache holds. Tokens are read in chunks so that the list of them
(an artefact of the benchmark, not something a service holds) is never all in memory.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import resource
import sys
from pathlib import Path

from hub_auth import HubAuth, Ok
from hub_auth._cache.memory import MemoryCache

_CHUNK = 100


def _status() -> dict[str, int]:
    """VmRSS and VmHWM (peak) from /proc, in bytes; ru_maxrss where there is no /proc."""
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        values = {"VmRSS": peak, "VmHWM": peak}
    return values


async def fill(hub_url: str, tokens_file: Path) -> dict[str, int]:
    cache = MemoryCache(ttl=3600.0, max_entries=1_000_000)
    async with HubAuth(endpoint=hub_url, cache=cache) as auth:
        validated = 0
        with tokens_file.open(encoding="utf-8") as lines:
            while chunk := [line.strip() for line in itertools.islice(lines, _CHUNK)]:
                results = await asyncio.gather(*(auth.whoami(token) for token in chunk))
                for result in results:
                    if not isinstance(result, Ok):
                        raise RuntimeError(f"whoami failed: {result}")
                validated += len(chunk)
                del chunk, results
        gc.collect()
        status = _status()
        return {
            "validated": validated,
            "entries": len(cache),
            "rss": status["VmRSS"],
            "peak": status["VmHWM"],
        }


def main() -> None:
    print(json.dumps(asyncio.run(fill(sys.argv[1], Path(sys.argv[2])))), flush=True)


if __name__ == "__main__":
    main()
