"""The FastAPI apps case 5 measures, each served by uvicorn in a process of its own.

``python -m benchmarks.cases._asgi_server HUB_URL KIND`` binds 127.0.0.1 on a free port,
prints ``listening PORT`` and serves until SIGTERM an app with one route, ``GET /``, guarded
according to ``KIND``:

- ``open``: no dependency;
- ``bearer``: FastAPI's own ``HTTPBearer``, which parses the header and checks nothing (what
  any security dependency costs in FastAPI);
- ``hub``: ``HubBearer`` with a ``MemoryCache``, set up as documented (the ``HubAuth`` lives in
  the lifespan, in ``app.state.hub_auth``);
- ``middleware``: no dependency, but a bare ASGI middleware (``WhoamiMiddleware``, here in the
  benchmark only) validates the bearer token with the same ``HubAuth`` before the route runs
  and leaves the ``UserInfo`` in ``request.state.user``: what checking every request costs
  without FastAPI's dependency machinery.

One route per app, because Starlette tries routes in order: in a shared app, the route
declared last would pay for matching the others first.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from hub_auth import HubAuth, Ok, UserInfo
from hub_auth._cache.memory import MemoryCache
from hub_auth.fastapi import HubBearer

KINDS = ("open", "bearer", "hub", "middleware")
_UNAUTHORIZED = b'{"detail":"Not authenticated"}'


class WhoamiMiddleware:
    """Every HTTP request needs a bearer token the Hub accepts (``app.state.hub_auth``).

    A sketch for the comparison: no per-route rules, no OpenAPI security scheme, a bare 401
    for every refusal.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and rest:
                    token = rest
                break
        if token is not None:
            result = await scope["app"].state.hub_auth.whoami(token)
            if isinstance(result, Ok):
                scope.setdefault("state", {})["user"] = result.value
                await self.app(scope, receive, send)
                return
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})


def build_app(hub_url: str, kind: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache = MemoryCache(ttl=600.0, max_entries=10_000)
        async with HubAuth(endpoint=hub_url, cache=cache) as auth:
            app.state.hub_auth = auth
            yield

    app = FastAPI(lifespan=lifespan)
    if kind == "open":

        @app.get("/")
        async def open_endpoint() -> dict[str, str]:
            return {"name": "anonymous"}

    elif kind == "bearer":

        @app.get("/")
        async def bearer_endpoint(
            credentials: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())],
        ) -> dict[str, str]:
            return {"name": credentials.scheme}

    elif kind == "hub":

        @app.get("/")
        async def hub_endpoint(
            user: Annotated[UserInfo, Depends(HubBearer())],
        ) -> dict[str, str]:
            return {"name": user.username}

    elif kind == "middleware":
        app.add_middleware(WhoamiMiddleware)

        @app.get("/")
        async def middleware_endpoint(request: Request) -> dict[str, str]:
            user: UserInfo = request.state.user
            return {"name": user.username}

    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    return app


def main() -> None:
    hub_url, kind = sys.argv[1], sys.argv[2]
    app = build_app(hub_url, kind)
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and accepted sockets inherit it; with proto 0, Nagle + delayed ACK stall keep-alive
    # responses by 40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
