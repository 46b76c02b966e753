"""One replica on a Redis Cluster in a process of its own, for tests/test_redis_cluster.py.

    python tests/cluster_replica.py HOST PORT HUB_URL

Its own HubAuth, RedisCache and ``redis.asyncio.RedisCluster`` connection (startup node
HOST:PORT); the shared secret comes from ``HUB_AUTH_CACHE_SECRET``. It prints ``ready``, then
answers each line ``{"whoami": TOKEN, "calls": N}`` with one JSON line: the N usernames (the
calls run at once) and the cache's statistics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys

from redis.asyncio.cluster import RedisCluster

from hub_auth import Err, HubAuth, RedisCache


async def main(host: str, port: int, hub_url: str) -> None:
    client = RedisCluster(host=host, port=port, socket_connect_timeout=1.0)
    # A generous timeout: a busy machine must not make a slow answer a Redis failure here.
    cache = RedisCache(client, secret=os.environ["HUB_AUTH_CACHE_SECRET"], timeout=2.0)
    loop = asyncio.get_running_loop()
    async with HubAuth(endpoint=hub_url, cache=cache, max_attempts=1, read_env=False) as auth:
        await client.initialize()  # the slot map, before the test's signal to go
        print("ready", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            calls = [auth.whoami(command["whoami"]) for _ in range(command["calls"])]
            users = [
                result.error.kind.value if isinstance(result, Err) else result.value.username
                for result in await asyncio.gather(*calls)
            ]
            answer = {"users": users, "stats": dataclasses.asdict(cache.stats())}
            print(json.dumps(answer), flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
