"""``examples/fastapi_app.py`` on a Redis Cluster (``benchmarks.service --redis-cluster``).

    EXAMPLE_REDIS_CLUSTER=127.0.0.1:7000 HUB_AUTH_CACHE_SECRET=... \
        uvicorn benchmarks._cluster_app:app --workers 4

The example's app and routes, with a lifespan whose ``RedisCache`` talks to the cluster through
``redis.asyncio.RedisCluster`` (startup node ``EXAMPLE_REDIS_CLUSTER``); ``EXAMPLE_CACHE_TTL``
and ``EXAMPLE_STALE_TTL`` as in the example.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio.cluster import RedisCluster

from examples.fastapi_app import app
from hub_auth import HubAuth, RedisCache

__all__ = ["app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    host, _, port = os.environ["EXAMPLE_REDIS_CLUSTER"].rpartition(":")
    client = RedisCluster(host=host, port=int(port), socket_connect_timeout=1.0)
    cache = RedisCache(
        client,
        secret=os.environ["HUB_AUTH_CACHE_SECRET"],
        ttl=float(os.environ.get("EXAMPLE_CACHE_TTL", "60")),
        negative_ttl=5.0,
        stale_ttl=float(os.environ.get("EXAMPLE_STALE_TTL", "0")),
    )
    try:
        # The slot map now, not inside the first request (where RedisCache's 0.25 s timeout
        # would count it as a Redis failure and put the cluster aside for 5 s).
        await client.initialize()
        async with HubAuth(cache=cache) as auth:
            app.state.hub_auth = auth
            yield
    finally:
        await client.aclose()


app.router.lifespan_context = lifespan
