"""FastAPI dependencies: who is calling, from their Hugging Face token (``hub_auth[fastapi]``).

Two ways in: ``HubBearer`` for API clients that send a token (below), and ``HubOAuth`` for
people in a browser ("Sign in with Hugging Face": ``hub_auth/fastapi/_oauth.py``, with its
session stores in ``hub_auth/fastapi/_sessions.py``).

``HubBearer`` reads ``Authorization: Bearer <token>``, asks the Hub who the token belongs to
through a shared ``HubAuth`` (with a cache: the Hub rate-limits whoami per IP) and returns the
caller's ``UserInfo``. Create the ``HubAuth`` in the app's lifespan, so its aiohttp session lives
in the server's event loop and is closed on shutdown::

    from contextlib import asynccontextmanager
    from typing import Annotated

    from fastapi import Depends, FastAPI
    from hub_auth import HubAuth, MemoryCache, UserInfo
    from hub_auth.fastapi import HubBearer

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with HubAuth(cache=MemoryCache(ttl=60.0)) as auth:
            app.state.hub_auth = auth  # where HubBearer looks by default
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(user: Annotated[UserInfo, Depends(HubBearer())]) -> dict[str, str]:
        return {"username": user.username}

Status codes (the response never contains the token):

=====  ============================================================================
401    no ``Authorization`` header or not ``Bearer <token>`` (``WWW-Authenticate:
       Bearer``); a malformed token, or one the Hub rejects as invalid, expired or
       revoked (``WWW-Authenticate: Bearer error="invalid_token"``)
403    the Hub knows the token but refuses it (an organisation's token policy); the
       caller is not in the required organisations; the token's role or fine-grained
       permissions are not enough (``error="insufficient_scope"``)
503    the token could not be checked: the Hub is unreachable, slow, failing (5xx),
       rate limiting this service, answering nonsense, or ``HF_HUB_OFFLINE`` is set;
       always with ``Retry-After``: the Hub's own wait (rounded up) when it gave one,
       else ``retry_after_default`` (5 s unless configured)
=====  ============================================================================

A failure of the service or of the Hub is never answered with 401 (that would tell clients to
throw away a good token) and never with 500.

WebSocket routes take the same dependency (it receives an ``HTTPConnection``, as FastAPI's own
``HTTPBearer``). There is no HTTP status to answer with, so a refusal closes the socket before
it is accepted (``fastapi.WebSocketException``), with a reason that never holds the token:

=====  ============================================================================
1008   policy violation: every case that is a 401 or a 403 over HTTP
1013   try again later: every case that is a 503 over HTTP (the reason says when, if
       the Hub did)
=====  ============================================================================

Browsers cannot set ``Authorization`` on a WebSocket; clients that can (services, scripts,
``websockets``, ``aiohttp``) send ``Authorization: Bearer <token>`` with the handshake.

Logging: a token that could not be checked is logged as a warning on the ``hub_auth`` logger,
at most once a minute for each kind of failure (``rate_limited``, ``timeout``, ...); the next
line of that kind says how many were left out, so a Hub outage under load does not flood logs.
"""

from hub_auth._rules import DEFAULT_RETRY_AFTER, ROLE_ORDER
from hub_auth.fastapi._bearer import HubBearer
from hub_auth.fastapi._oauth import HubOAuth, OAuthInfo, OAuthOrgInfo, OAuthUserInfo
from hub_auth.fastapi._sessions import MemorySessionStore, RedisSessionStore, SessionStore

# Reprs, tracebacks and help() show the public path. Not the pydantic models (OAuth*Info):
# their string annotations resolve in their own module only (typing.get_type_hints).
for _public in (HubBearer, HubOAuth, MemorySessionStore, RedisSessionStore, SessionStore):
    _public.__module__ = __name__
del _public

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "ROLE_ORDER",
    "HubBearer",
    "HubOAuth",
    "MemorySessionStore",
    "OAuthInfo",
    "OAuthOrgInfo",
    "OAuthUserInfo",
    "RedisSessionStore",
    "SessionStore",
]
