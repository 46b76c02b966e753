"""HubBearer: who is calling, from the Hugging Face token they send (``hub_auth.fastapi``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn

from fastapi import HTTPException, WebSocketException
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection
from starlette.status import WS_1008_POLICY_VIOLATION, WS_1013_TRY_AGAIN_LATER

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Ok
from hub_auth._rules import (
    DEFAULT_RETRY_AFTER,
    NO_TOKEN_DETAIL,
    ROLE_ORDER,
    AccessRules,
    Verdict,
    check_retry_after,
    judge,
    retry_after_seconds,
    warn_if_uncached,
)

__all__ = ["DEFAULT_RETRY_AFTER", "ROLE_ORDER", "HubBearer"]

_WHOAMI = HubAuth.whoami
_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_INSUFFICIENT_SCOPE = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}

# A WebSocket close reason must fit a control frame: 125 bytes, 2 of them the code.
_MAX_CLOSE_REASON_BYTES = 123


class _Denied(Exception):
    """Why a connection is refused, before it is known whether it is HTTP or WebSocket."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class HubBearer(SecurityBase):
    """A FastAPI dependency returning the caller's ``UserInfo`` from their bearer token.

    Use it with ``Depends``: ``user: Annotated[UserInfo, Depends(HubBearer())]``, on HTTP and
    WebSocket routes alike. It also declares an HTTP bearer security scheme, so ``/docs``
    offers an "Authorize" button.

    Which entity a permission must hold on: ``require_permissions`` is checked against the
    entity the route is about, not against "anywhere". That entity is ``permission_entity``
    when given; otherwise the organisations of ``require_orgs``; otherwise the caller's own
    account. With ``require_orgs`` and the default any-of rule, access needs one required
    organisation that the caller belongs to *and* on which the token holds every required
    permission; with ``require_all_orgs=True``, every permission on every required
    organisation. A fine-grained permission scoped to the caller's own account therefore
    grants nothing in an organisation. Global fine-grained permissions hold everywhere;
    classic tokens are not scoped (``write`` grants everything, ``read`` every ``*.read``).

    ``require_orgs`` alone checks membership only, as whoami reports it: it says nothing about
    what the token may do in the organisation (a ``read`` token of a member, or a fine-grained
    token with no permission there, passes). Add ``require_permissions`` (or ``require_role``)
    for that.

    Args:
        auth: The ``HubAuth`` that checks tokens, or a function of the connection (an HTTP
            request or a WebSocket) returning one; by default ``app.state.hub_auth`` (set it
            in the lifespan). Give it a cache (``MemoryCache``, ``RedisCache``): without one
            every request reaches the Hub, whose whoami is rate-limited per IP.
        require_orgs: Organisations the caller must belong to: at least one of them, or all
            with ``require_all_orgs=True``.
        require_all_orgs: See ``require_orgs``.
        require_role: The weakest classic token role accepted (``read`` < ``write`` <
            ``admin``). Fine-grained and OAuth tokens have no such role and are refused
            when it is set: use ``require_permissions`` for them.
        require_permissions: Fine-grained permissions the token must all grant (for example
            ``"repo.content.read"``) on the route's entity (see above), as
            ``TokenInfo.has_permission`` decides.
        permission_entity: The user or organisation name the permissions must hold on, for a
            route about an entity that is neither the caller nor one of ``require_orgs``.
        auto_error: With ``False``, a request without a bearer token gets ``None`` instead of
            a 401 (optional authentication). A bearer token that is present is still checked:
            a bad one is a 401, an unverifiable one a 503.
        scheme_name: The security scheme's name in the OpenAPI document.
        retry_after_default: Seconds in a 503's ``Retry-After`` when the Hub gave no wait of
            its own (network errors, timeouts, a 5xx without the header); rounded up.
    """

    def __init__(
        self,
        auth: HubAuth | Callable[[HTTPConnection], HubAuth] | None = None,
        *,
        require_orgs: Sequence[str] = (),
        require_all_orgs: bool = False,
        require_role: str | None = None,
        require_permissions: Sequence[str] = (),
        permission_entity: str | None = None,
        auto_error: bool = True,
        scheme_name: str | None = None,
        retry_after_default: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        if auth is not None and not isinstance(auth, HubAuth) and not callable(auth):
            raise TypeError(f"auth must be a HubAuth or a callable, not {type(auth).__name__}")
        self._rules = AccessRules.build(
            require_orgs, require_all_orgs, require_role, require_permissions, permission_entity
        )
        retry_after_default = check_retry_after(retry_after_default)
        self._auth = auth
        self.require_orgs = self._rules.require_orgs
        self.require_all_orgs = require_all_orgs
        self.require_role = require_role
        self.require_permissions = self._rules.require_permissions
        self.permission_entity = permission_entity
        self.auto_error = auto_error
        self.retry_after_default = float(retry_after_default)
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
            ("permission_entity", self.permission_entity),
        ]

    async def __call__(self, connection: HTTPConnection) -> UserInfo | None:
        """The caller's ``UserInfo``; ``None`` for an anonymous caller with ``auto_error=False``.

        Raises ``HTTPException`` on an HTTP route and ``WebSocketException`` (close before
        accept: 1008, or 1013 when the token could not be checked) on a WebSocket route.
        """
        try:
            token = self._bearer_token(connection)
            if token is None:
                return None
            auth = self._hub_auth(connection)
            # A warm cache answers without a coroutine (what whoami tries first): a few µs
            # of every request. Not when a subclass of HubAuth has a whoami of its own.
            result = auth._whoami_from_cache(token) if type(auth).whoami is _WHOAMI else None
            if result is None:
                result = await auth.whoami(token)
            # isinstance, not ``match``: class patterns cost about a microsecond a request.
            if isinstance(result, Ok):
                user = result.value
                # No call at all for a route without rules (the common case).
                refusal = self._rules.check(user) if self._rules.active else None
                if refusal is not None:
                    headers = _INSUFFICIENT_SCOPE if refusal.insufficient_scope else None
                    raise _Denied(403, refusal.detail, headers)
                return user
            _refuse(result.error, auth, self.retry_after_default)
        except _Denied as denied:
            _raise_for(connection, denied)
        raise AssertionError("unreachable")  # pragma: no cover

    def _bearer_token(self, connection: HTTPConnection) -> str | None:
        # The raw ASGI headers (names are lowercase there), as starlette's Headers.get reads
        # them, without building a Headers object and a Mapping.get: a µs of each request.
        # Then get_authorization_scheme_param's split, inline.
        header: str | None = None
        for name, value in connection.scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if header:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if token and scheme.lower() == "bearer":
                return token
        if not self.auto_error:
            return None
        detail = NO_TOKEN_DETAIL if not header else "Authorization must be 'Bearer <token>'"
        raise _Denied(401, detail, _UNAUTHENTICATED)

    def _hub_auth(self, connection: HTTPConnection) -> HubAuth:
        source = self._auth
        if isinstance(source, HubAuth):
            auth: object = source
        elif source is not None:
            auth = source(connection)
        else:
            # scope["app"] is what connection.app reads, without the property.
            auth = getattr(connection.scope["app"].state, "hub_auth", None)
            if auth is None:
                raise RuntimeError(
                    "HubBearer found no HubAuth: pass HubBearer(auth=...) or set "
                    "app.state.hub_auth in the app's lifespan"
                )
        if not isinstance(auth, HubAuth):
            raise TypeError(f"HubBearer needs a HubAuth, got {type(auth).__name__}")
        if auth.cache is None:  # warn_if_uncached's own test, without its call on every request
            warn_if_uncached(auth, "HubBearer")
        return auth


def _refuse(error: HubAuthError, auth: HubAuth, retry_after_default: float) -> NoReturn:
    """Raise the answer for a token that could not be accepted."""
    verdict, hub_wait = judge(error, auth)
    if verdict is Verdict.REJECTED:
        raise _Denied(
            401,
            "invalid token: the Hub rejected it (invalid, expired or revoked)"
            if error.kind is ErrorKind.UNAUTHORIZED
            else error.message,
            _INVALID_TOKEN,
        )
    if verdict is Verdict.FORBIDDEN:
        # The Hub knows the token and refuses it by policy; its message says why and never
        # holds the token. A new login would not help, so not 401.
        raise _Denied(403, error.message)
    # Always a Retry-After: the Hub's wait when it said, else ours (clients should back off
    # from an outage as well as from a rate limit).
    seconds = retry_after_seconds(hub_wait, retry_after_default)
    detail = (
        f"the token could not be checked right now ({error.kind.value}); "
        f"try again later (in {seconds}s)"
    )
    raise _Denied(503, detail, {"Retry-After": seconds})


def _raise_for(connection: HTTPConnection, denied: _Denied) -> NoReturn:
    """``HTTPException`` for HTTP; for a WebSocket, a close before accept (1008 or 1013)."""
    if connection.scope["type"] == "websocket":
        code = WS_1013_TRY_AGAIN_LATER if denied.status == 503 else WS_1008_POLICY_VIOLATION
        reason = denied.detail.encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        raise WebSocketException(code=code, reason=reason) from None
    raise HTTPException(
        status_code=denied.status, detail=denied.detail, headers=denied.headers
    ) from None
