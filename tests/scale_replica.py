"""One replica of a service in a process of its own, for tests/test_scale_out.py.

    python tests/scale_replica.py REDIS_URL HUB_URL '{"stale_ttl": 60, ...}'

The shared secret comes from ``HUB_AUTH_CACHE_SECRET``; ``max_attempts`` in the options goes
to HubAuth, the rest to RedisCache. It prints ``ready``, then reads one JSON command a line
from stdin and answers each with one JSON line:

- ``{"whoami": TOKEN}`` -> ``{"user": NAME}`` or ``{"error": KIND, "retry_after": S}``
- ``{"stats": true}`` -> the cache's statistics
- ``{"advance": S}`` -> ``{"advanced": S}``: the cache's clock (unix seconds) moves S seconds
  ahead of the real one, so tests step past a ttl or a backoff without sleeping
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time

import redis.asyncio as aioredis

from hub_auth import Err, HubAuth, RedisCache


async def main(redis_url: str, hub_url: str, options: dict[str, object]) -> None:
    attempts = int(options.pop("max_attempts", 1))  # type: ignore[call-overload]
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1.0)
    offset = 0.0

    def clock() -> float:
        return time.time() + offset

    secret = os.environ["HUB_AUTH_CACHE_SECRET"]
    cache = RedisCache(client, secret=secret, clock=clock, **options)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    auth = HubAuth(endpoint=hub_url, cache=cache, max_attempts=attempts, read_env=False)
    async with auth:
        print("ready", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            answer: dict[str, object]
            if "whoami" in command:
                result = await auth.whoami(command["whoami"])
                if isinstance(result, Err):
                    answer = {
                        "error": result.error.kind.value,
                        "retry_after": result.error.retry_after,
                    }
                else:
                    answer = {"user": result.value.username}
            elif "advance" in command:
                offset += command["advance"]
                answer = {"advanced": command["advance"]}
            else:
                answer = dataclasses.asdict(cache.stats())
            print(json.dumps(answer), flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
