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
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from hub_auth import HubAuth, MemoryCache, UserInfo
from hub_auth.fastapi import HubBearer

TEAM_ORG = os.environ.get("EXAMPLE_TEAM_ORG", "huggingface")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One HubAuth for the whole app, created in the server's event loop and closed on
    # shutdown. The cache matters: the Hub rate-limits whoami per IP.
    async with HubAuth(cache=MemoryCache(ttl=60.0, negative_ttl=5.0)) as auth:
        app.state.hub_auth = auth
        yield


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
