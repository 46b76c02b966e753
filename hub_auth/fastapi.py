"""FastAPI dependencies: who is calling, from their Hugging Face token (``hub_auth[fastapi]``).

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
       ``Retry-After`` when the Hub said when to come back
=====  ============================================================================

A failure of the service or of the Hub is never answered with 401 (that would tell clients to
throw away a good token) and never with 500.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import NoReturn

from fastapi import HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Err, Ok

__all__ = ["ROLE_ORDER", "HubBearer"]

logger = logging.getLogger("hub_auth")

ROLE_ORDER = ("read", "write", "admin")
"""Classic token roles from weakest to strongest, for ``require_role``."""

_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_INSUFFICIENT_SCOPE = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
_REJECTED = (ErrorKind.UNAUTHORIZED, ErrorKind.INVALID_TOKEN)

# HubAuth instances already warned about having no cache (once each, not once per request).
_warned_uncached: weakref.WeakSet[HubAuth] = weakref.WeakSet()


class HubBearer(SecurityBase):
    """A FastAPI dependency returning the caller's ``UserInfo`` from their bearer token.

    Use it with ``Depends``: ``user: Annotated[UserInfo, Depends(HubBearer())]``. It also
    declares an HTTP bearer security scheme, so ``/docs`` offers an "Authorize" button.

    Args:
        auth: The ``HubAuth`` that checks tokens, or a function of the request returning
            one; by default ``request.app.state.hub_auth`` (set it in the lifespan). Give it
            a cache (``MemoryCache``, ``RedisCache``): without one every request reaches the
            Hub, whose whoami is rate-limited per IP.
        require_orgs: Organisations the caller must belong to: at least one of them, or all
            with ``require_all_orgs=True``.
        require_all_orgs: See ``require_orgs``.
        require_role: The weakest classic token role accepted (``read`` < ``write`` <
            ``admin``). Fine-grained and OAuth tokens have no such role and are refused
            when it is set: use ``require_permissions`` for them.
        require_permissions: Fine-grained permissions the token must all grant (for example
            ``"repo.content.read"``), as ``TokenInfo.has_permission`` decides: a classic
            ``write`` token grants everything, a ``read`` token every ``*.read``.
        auto_error: With ``False``, a request without a bearer token gets ``None`` instead of
            a 401 (optional authentication). A bearer token that is present is still checked:
            a bad one is a 401, an unverifiable one a 503.
        scheme_name: The security scheme's name in the OpenAPI document.
    """

    def __init__(
        self,
        auth: HubAuth | Callable[[Request], HubAuth] | None = None,
        *,
        require_orgs: Sequence[str] = (),
        require_all_orgs: bool = False,
        require_role: str | None = None,
        require_permissions: Sequence[str] = (),
        auto_error: bool = True,
        scheme_name: str | None = None,
    ) -> None:
        if auth is not None and not isinstance(auth, HubAuth) and not callable(auth):
            raise TypeError(f"auth must be a HubAuth or a callable, not {type(auth).__name__}")
        if isinstance(require_orgs, str) or isinstance(require_permissions, str):
            raise TypeError("require_orgs and require_permissions take a list of names")
        if require_role is not None and require_role not in ROLE_ORDER:
            raise ValueError(f"require_role must be one of {ROLE_ORDER}, got {require_role!r}")
        self._auth = auth
        self.require_orgs = tuple(require_orgs)
        self.require_all_orgs = require_all_orgs
        self.require_role = require_role
        self.require_permissions = tuple(require_permissions)
        self.auto_error = auto_error
        self.model = HTTPBearerModel(
            bearerFormat="Hugging Face access token",
            description="A Hugging Face Hub token (`hf_...`), checked with the Hub's whoami.",
        )
        self.scheme_name = scheme_name or type(self).__name__

    def __repr__(self) -> str:
        options = [f"{name}={value!r}" for name, value in self._options() if value]
        return f"HubBearer({', '.join(options)})"

    def _options(self) -> list[tuple[str, object]]:
        return [
            ("require_orgs", list(self.require_orgs)),
            ("require_all_orgs", self.require_all_orgs),
            ("require_role", self.require_role),
            ("require_permissions", list(self.require_permissions)),
        ]

    async def __call__(self, request: Request) -> UserInfo | None:
        """The caller's ``UserInfo``; ``None`` for an anonymous caller with ``auto_error=False``."""
        token = self._bearer_token(request)
        if token is None:
            return None
        auth = self._hub_auth(request)
        match await auth.whoami(token):
            case Ok(user):
                self._authorize(user)
                return user
            case Err(error):
                _refuse(error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _bearer_token(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
        if not self.auto_error:
            return None
        detail = "Not authenticated" if not header else "Authorization must be 'Bearer <token>'"
        raise HTTPException(status_code=401, detail=detail, headers=_UNAUTHENTICATED)

    def _hub_auth(self, request: Request) -> HubAuth:
        source = self._auth
        auth: object
        if isinstance(source, HubAuth):
            auth = source
        elif source is not None:
            auth = source(request)
        else:
            auth = getattr(request.app.state, "hub_auth", None)
            if auth is None:
                raise RuntimeError(
                    "HubBearer found no HubAuth: pass HubBearer(auth=...) or set "
                    "app.state.hub_auth in the app's lifespan"
                )
        if not isinstance(auth, HubAuth):
            raise TypeError(f"HubBearer needs a HubAuth, got {type(auth).__name__}")
        if auth.cache is None and auth not in _warned_uncached:
            _warned_uncached.add(auth)
            logger.warning(
                "HubBearer uses a HubAuth without a cache: every request asks the Hub, whose "
                "whoami is rate-limited per IP; pass HubAuth(cache=MemoryCache())"
            )
        return auth

    def _authorize(self, user: UserInfo) -> None:
        """Raise 403 unless ``user`` meets the organisation, role and permission rules."""
        if self.require_orgs:
            member = set(user.organizations)
            wanted = self.require_orgs
            allowed = (
                all(org in member for org in wanted)
                if self.require_all_orgs
                else any(org in member for org in wanted)
            )
            if not allowed:
                which = "all of" if self.require_all_orgs and len(wanted) > 1 else "one of"
                raise HTTPException(
                    status_code=403,
                    detail=f"this resource requires membership of {which}: {', '.join(wanted)}",
                )
        token = user.token
        if self.require_role is not None:
            role = token.role if token is not None else None
            needed = ROLE_ORDER.index(self.require_role)
            if role not in ROLE_ORDER or ROLE_ORDER.index(role) < needed:
                raise HTTPException(
                    status_code=403,
                    detail=f"this resource requires a token with the {self.require_role!r} "
                    f"role or higher (this token's role: {role or 'none'})",
                    headers=_INSUFFICIENT_SCOPE,
                )
        if self.require_permissions:
            missing = [
                permission
                for permission in self.require_permissions
                if token is None or not token.has_permission(permission)
            ]
            if missing:
                raise HTTPException(
                    status_code=403,
                    detail=f"this token lacks the permissions: {', '.join(missing)}",
                    headers=_INSUFFICIENT_SCOPE,
                )


def _refuse(error: HubAuthError) -> NoReturn:
    """Raise the HTTP answer for a token that could not be accepted."""
    if error.kind in _REJECTED:
        raise HTTPException(
            status_code=401,
            detail="invalid token: the Hub rejected it (invalid, expired or revoked)"
            if error.kind is ErrorKind.UNAUTHORIZED
            else error.message,
            headers=_INVALID_TOKEN,
        )
    if error.kind is ErrorKind.FORBIDDEN:
        # The Hub knows the token and refuses it by policy; its message says why and never
        # holds the token. A new login would not help, so not 401.
        raise HTTPException(status_code=403, detail=error.message)
    # Anything else means the token could not be checked: the fault is the Hub's or ours.
    logger.warning("could not check a caller's token with the Hub: %s", error)
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    raise HTTPException(
        status_code=503,
        detail=f"the token could not be checked right now ({error.kind.value}); try again later",
        headers=headers or None,
    )
