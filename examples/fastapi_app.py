"""A FastAPI service that knows its callers from their Hugging Face tokens.

Run it against FakeHub (no account, no network)::

    python -m hub_auth.testing --seed-users 3 --tokens-out /tmp/tokens.json --port 8077 &
    HF_ENDPOINT=http://127.0.0.1:8077 uvicorn examples.fastapi_app:app --port 8000

    TOKEN=$(python -c "import json; print(next(iter(json.load(open('/tmp/tokens.json')))))")
    curl localhost:8000/                                       # public
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/me   # {"username": "user0", ...}
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/team # 403: user0 is in no org
    curl -H "Authorization: Bearer hf_wrong" localhost:8000/me # 401

Without ``HF_ENDPOINT`` it asks the real Hub. ``EXAMPLE_TEAM_ORG`` names the organisation
``/team`` requires (default ``huggingface``).

Several workers or replicas share one whoami cache in Redis when ``EXAMPLE_REDIS_URL`` is set
(``pip install 'hub_auth[redis]'``; ``python -m benchmarks.service`` runs it so)::

    EXAMPLE_REDIS_URL=redis://127.0.0.1:6379/0 \
    HUB_AUTH_CACHE_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    EXAMPLE_STALE_TTL=300 uvicorn examples.fastapi_app:app --workers 4

``EXAMPLE_CACHE_TTL`` (seconds, default 60) and ``EXAMPLE_STALE_TTL`` (default 0: off) tune it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from hub_auth import HubAuth, MemoryCache, RedisCache, UserInfo
from hub_auth.fastapi import HubBearer

TEAM_ORG = os.environ.get("EXAMPLE_TEAM_ORG", "huggingface")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One HubAuth for the whole app, created in the server's event loop and closed on
    # shutdown. The cache matters: the Hub rate-limits whoami per IP.
    ttl = float(os.environ.get("EXAMPLE_CACHE_TTL", "60"))
    stale_ttl = float(os.environ.get("EXAMPLE_STALE_TTL", "0"))
    redis_url = os.environ.get("EXAMPLE_REDIS_URL")
    if not redis_url:
        cache = MemoryCache(ttl=ttl, negative_ttl=5.0, stale_ttl=stale_ttl)
        async with HubAuth(cache=cache) as auth:
            app.state.hub_auth = auth
            yield
        return
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    shared = RedisCache(
        client,
        secret=os.environ["HUB_AUTH_CACHE_SECRET"],  # the same in every worker and replica
        ttl=ttl,
        negative_ttl=5.0,
        stale_ttl=stale_ttl,
    )
    try:
        async with HubAuth(cache=shared) as auth:
            app.state.hub_auth = auth
            yield
    finally:
        await client.aclose()


app = FastAPI(title="hub_auth example", lifespan=lifespan)

Caller = Annotated[UserInfo, Depends(HubBearer())]
TeamMember = Annotated[UserInfo, Depends(HubBearer(require_orgs=[TEAM_ORG]))]


@app.get("/")
async def public() -> dict[str, str]:
    return {"message": "anyone can read this; try /me with a Hugging Face token"}


@app.get("/me")
async def me(user: Caller) -> dict[str, Any]:
    return {"username": user.username, "orgs": user.organizations}


@app.get("/team")
async def team(user: TeamMember) -> dict[str, str]:
    return {"message": f"welcome, {user.username}, member of {TEAM_ORG}"}
