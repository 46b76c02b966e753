"""What the MCP verifiers (official SDK and FastMCP) share: checking a token, and the gate.

One token check (``TokenCheck.check``) answers for both adapters, through ``HubAuth.whoami``
(so its cache, single-flight, stale-if-error and shared backoff apply) and the rules of
``hub_auth._rules`` (the same as ``HubBearer``'s). Its ``Checked`` outcome is one of:

- accepted (``user`` set): the verifier returns an ``AccessToken`` carrying the ``UserInfo``;
- 401: the Hub rejected the token (or it is bound to another resource): the verifier
  returns ``None`` and the SDK answers 401 ``invalid_token``;
- 403: the Hub refuses it by policy, or it breaks an organisation/role/permission rule;
- 503: it could not be checked (Hub down, rate limited, timeout).

The SDK's bearer middleware knows only "an AccessToken" or "None" (a 401), and an exception
raised by ``verify_token`` becomes a 500. So ``Gate``, an ASGI middleware outside the SDK's,
checks the bearer token first: it answers 403 and 503 itself (``Retry-After`` and a JSON
body), and hands the outcome to ``verify_token`` through a context variable, which then
costs nothing more (no second cache lookup, no second Hub request).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from hub_auth import _rules
from hub_auth._cache.memory import MemoryCache
from hub_auth._client import HubAuth
from hub_auth._models import UserInfo
from hub_auth._result import Ok
from hub_auth._rules import ROLE_ORDER, AccessRuleOptions, AccessRules, Verdict

__all__ = ["Checked", "Gate", "TokenCheck", "access_token_fields", "bearer_token", "pre_checked"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of one token check (see the module docstring)."""

    user: UserInfo | None
    status: int = 200
    error: str = ""
    detail: str = ""
    retry_after: str | None = None


# The outcome the gate found for this request's token: (token, outcome).
_pre_checked: contextvars.ContextVar[tuple[str, Checked] | None] = contextvars.ContextVar(
    "hub_auth_mcp_pre_checked", default=None
)


def pre_checked(token: str) -> Checked | None:
    """The gate's outcome for ``token`` in this request, if the gate checked it."""
    found = _pre_checked.get()
    if found is not None and found[0] == token:
        return found[1]
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token as the SDK's ``BearerAuthBackend`` reads it (first Authorization header)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            header = value.decode("latin-1")
            return header[7:] if header.lower().startswith("bearer ") else None
    return None


class TokenCheck:
    """A token check bound to one ``HubAuth``, rules and resource (see the module docstring).

    Without ``auth``, it creates ``HubAuth(cache=MemoryCache())`` (endpoint from
    ``HF_ENDPOINT``), owns it and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        auth: HubAuth | None,
        rules: AccessRuleOptions,
        *,
        retry_after_default: float,
        resource_server_url: str | None,
        adapter: str,
    ) -> None:
        if auth is not None and not isinstance(auth, HubAuth):
            raise TypeError(f"auth must be a HubAuth, not {type(auth).__name__}")
        self.rules = AccessRules.build(**rules)
        self.owns_auth = auth is None
        self.auth = auth if auth is not None else HubAuth(cache=MemoryCache())
        self.retry_after_default = _rules.check_retry_after(retry_after_default)
        self.resource_server_url: str | None = None
        if resource_server_url is not None:
            self.bind_resource(resource_server_url)
        self.adapter = adapter

    def bind_resource(self, url: str) -> None:
        """Refuse tokens the Hub bound to a resource other than ``url`` (this server)."""
        self.resource_server_url = _same_resource(url)

    async def check(self, token: str) -> Checked:
        auth = self.auth
        _rules.warn_if_uncached(auth, self.adapter)
        result = await auth.whoami(token)
        if isinstance(result, Ok):
            user = result.value
            refusal = self.rules.check(user)
            if refusal is not None:
                code = "insufficient_scope" if refusal.insufficient_scope else "access_denied"
                return Checked(None, 403, code, refusal.detail)
            bound = user.token.resource if user.token is not None else None
            if (
                bound is not None
                and self.resource_server_url is not None
                and _same_resource(bound) != self.resource_server_url
            ):
                return Checked(None, 401, "invalid_token", "the token is for another resource")
            return Checked(user)
        error = result.error
        verdict, hub_wait = _rules.judge(error, auth)
        if verdict is Verdict.REJECTED:
            return Checked(None, 401, "invalid_token", "the Hub rejected the token")
        if verdict is Verdict.FORBIDDEN:
            return Checked(None, 403, "access_denied", error.message)
        seconds = _rules.retry_after_seconds(hub_wait, self.retry_after_default)
        detail = (
            f"the token could not be checked right now ({error.kind.value}); "
            f"try again later (in {seconds}s)"
        )
        return Checked(None, 503, "temporarily_unavailable", detail, seconds)

    async def aclose(self) -> None:
        """Close the ``HubAuth`` this check created (a borrowed one is left open).

        A fresh one (no session yet: sessions open lazily) takes its place, so that a server
        started again in the same process (a new event loop) works too.
        """
        if self.owns_auth:
            closing, self.auth = self.auth, HubAuth(cache=MemoryCache())
            await closing.aclose()


def _same_resource(url: str) -> str:
    return url.rstrip("/")


def access_token_fields(token: str, user: UserInfo, endpoint: str) -> dict[str, Any]:
    """The ``AccessToken`` fields for an accepted ``user`` (both SDKs' models take them)."""
    info = user.token
    subject = user.id or user.username
    avatar = user.avatar_url
    claims: dict[str, Any] = {
        "iss": endpoint,
        "sub": subject,
        "preferred_username": user.username,
        "name": user.fullname or user.username,
        "picture": f"{endpoint}{avatar}" if avatar and avatar.startswith("/") else avatar,
        "orgs": list(user.organizations),
        "token_kind": info.type if info is not None else None,
        "role": info.role if info is not None else None,
        "is_pro": user.is_pro,
    }
    if user.email is not None:
        claims["email"] = user.email
    expires = info.expires_at if info is not None else None
    return {
        "token": token,
        # A Hub token names no OAuth client: the account stands for it (as FastMCP's verifier
        # does), which keeps the SDK's session binding (client, issuer, subject) per user.
        "client_id": subject,
        "scopes": token_scopes(user),
        "expires_at": int(expires.timestamp()) if expires is not None else None,
        "resource": info.resource if info is not None else None,
        "subject": subject,
        "claims": claims,
        "user": user,
    }


def token_scopes(user: UserInfo) -> list[str]:
    """Scopes for ``AuthSettings(required_scopes=...)``: the classic role and the roles it
    implies (``write`` → ``read``, ``write``), other roles as they are, fine-grained global
    permissions, and the OAuth scopes the Hub reports."""
    info = user.token
    if info is None:
        return []
    scopes: list[str] = []
    role = info.role
    if role in ROLE_ORDER:
        scopes.extend(ROLE_ORDER[: ROLE_ORDER.index(role) + 1])
    elif role:
        scopes.append(role)
    scopes.extend(info.global_permissions)
    scopes.extend(info.scopes)
    return list(dict.fromkeys(scopes))


class Gate:
    """ASGI middleware: checks the bearer token before the SDK's own auth middleware.

    Answers 503 (``Retry-After``) when the token could not be checked and 403 when it is
    refused by policy or rule; otherwise passes the request on, with the outcome for
    ``verify_token``. On the app's lifespan shutdown it awaits ``on_shutdown`` and closes a
    ``HubAuth`` the check owns, in the server's event loop.
    """

    def __init__(
        self,
        app: ASGIApp,
        check: TokenCheck,
        *,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.check = check
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        token = bearer_token(scope) if kind == "http" else None
        if token is None:
            await self.app(scope, receive, send)
            return
        checked = await self.check.check(token)
        if checked.status in (403, 503):
            await _answer(send, checked)
            return
        reset = _pre_checked.set((token, checked))
        try:
            await self.app(scope, receive, send)
        finally:
            _pre_checked.reset(reset)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def forward(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    if self.on_shutdown is not None:
                        await self.on_shutdown()
                finally:
                    await self.check.aclose()
            await send(message)

        return forward


async def _answer(send: Send, checked: Checked) -> None:
    body = json.dumps({"error": checked.error, "error_description": checked.detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        *_ANSWER_HEADERS,
        (b"content-length", str(len(body)).encode()),
    ]
    if checked.retry_after is not None:
        headers.append((b"retry-after", checked.retry_after.encode()))
    if checked.error == "insufficient_scope":
        challenge = f'Bearer error="insufficient_scope", error_description="{checked.detail}"'
        headers.append((b"www-authenticate", challenge.encode()))
    await send({"type": "http.response.start", "status": checked.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
