"""``HubOAuth``: "Sign in with Hugging Face" for FastAPI apps, on Spaces and elsewhere.

The flow is OpenID Connect's authorization code flow with PKCE (S256), ``state`` and ``nonce``:

1. ``GET /oauth/huggingface/login?next=/page`` keeps a pending login server-side (state,
   nonce, PKCE verifier, where to go next) under a random id the browser gets in a cookie,
   and redirects to the provider's consent page;
2. ``GET /oauth/huggingface/callback`` takes that pending login (single use), checks
   ``state``, exchanges the code (HTTP Basic for confidential apps, PKCE always), verifies the
   id_token with joserfc against the provider's JWKS (RS256; ``iss``, ``aud``, ``exp``,
   ``nonce``), reads ``/oauth/userinfo`` and starts a session under a new random id;
3. ``Depends(oauth.user)`` loads the session, refreshes the access token shortly before it
   expires (once per session, however many requests arrive together), reads the profile
   again with the new token (memberships are decided again) and returns ``OAuthInfo``; a
   refresh the provider refuses, or a profile that no longer meets ``require_orgs`` /
   ``org_id``, ends the session;
4. ``POST /oauth/huggingface/logout?next=/`` deletes the session (a ``GET`` shows a button
   that posts: a link from another site cannot sign anyone out).

The browser only ever holds random session ids (HttpOnly cookies, ``__Host-`` when Secure);
tokens stay in the ``SessionStore``, under the SHA-256 of the id. Requests from another site
that could change something (unsafe methods, WebSocket handshakes) are refused: see
``HubOAuth._refuse_cross_site``. Facts: ``shared/reference/OAUTH_FACTS.md``.

Every request to the provider (discovery, token, userinfo, JWKS) goes through
``HubClient.request``, the client's one request path (timeout, same-origin redirects, a
bounded body read, errors named by cause). The client is borrowed from a ``HubAuth``
(``auth=``, else ``app.state.hub_auth``) when there is one; otherwise ``HubOAuth`` opens its
own, once, inside the running loop, and closes it on the app's shutdown or ``aclose()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, HTTPException, WebSocketException
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_serializer
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hub_auth import _telemetry
from hub_auth._client import HubAuth
from hub_auth._http import HubClient
from hub_auth._oauth import (
    AUTHORIZATION_CODE_GRANT,
    DISCOVERY_PATH,
    REFRESH_TOKEN_GRANT,
    SESSION_REFRESH_MARGIN,
    is_loopback_host,
    pkce_challenge,
    token_lifetime,
)
from hub_auth._result import Err
from hub_auth._settings import Settings, openid_provider_url
from hub_auth._tokens import MaskedStr
from hub_auth.fastapi._sessions import (
    PENDING_LOGIN_PREFIX,
    MemorySessionStore,
    SessionStore,
    save_if_present,
)

__all__ = [
    "CALLBACK_PATH",
    "LOGIN_PATH",
    "LOGOUT_PATH",
    "HubOAuth",
    "OAuthInfo",
    "OAuthOrgInfo",
    "OAuthUserInfo",
]

logger = logging.getLogger("hub_auth")

LOGIN_PATH = "/oauth/huggingface/login"
CALLBACK_PATH = "/oauth/huggingface/callback"
LOGOUT_PATH = "/oauth/huggingface/logout"
ERROR_PARAMETER = "hub_oauth_error"
"""Query parameter added to ``next`` when a sign-in did not complete (see ``login_error``)."""

_LOGIN_LIFETIME = 600.0
MAX_NEXT_BYTES = 2048
"""The longest ``next`` the login route keeps (UTF-8 bytes): longer is a 400, never stored."""
_DEFAULT_TOKEN_LIFETIME = 3600.0
"""An access token's lifetime when the token answer has no ``expires_in``."""
_METADATA_LIFETIME = 3600.0
_ERROR_MESSAGES = {
    "access_denied": "Sign-in with Hugging Face was cancelled: access was not granted.",
    "failed": "Sign-in with Hugging Face did not complete. Please try again.",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class OAuthOrgInfo(_Model):
    """An organisation the signed-in user belongs to (scope ``read-memberships``)."""

    sub: str
    """The organisation's id (what ``orgIds`` takes)."""
    username: str = Field(alias="preferred_username")
    name: str | None = None
    picture: str | None = None
    can_pay: bool | None = Field(default=None, alias="canPay")
    role_in_org: str | None = Field(default=None, alias="roleInOrg")
    plan: str | None = None
    security_restrictions: tuple[str, ...] = Field(default=(), alias="securityRestrictions")


class OAuthUserInfo(_Model):
    """Who signed in, from the provider's ``/oauth/userinfo``."""

    sub: str
    username: str = Field(alias="preferred_username")
    name: str | None = None
    picture: str | None = None
    profile: str | None = None
    website: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    is_pro: bool = Field(default=False, alias="isPro")
    can_pay: bool | None = Field(default=None, alias="canPay")
    orgs: tuple[OAuthOrgInfo, ...] = ()


class OAuthInfo(_Model):
    """The signed-in user and an access token to call the Hub as them (``HubAuth(token=...)``)."""

    user: OAuthUserInfo
    access_token: SecretStr
    expires_at: datetime
    scopes: tuple[str, ...]


class _Stored(BaseModel):
    """What the session store holds: secrets are SecretStr in memory, plain in the JSON."""

    @field_serializer("*", when_used="json")
    def _reveal(self, value: Any) -> Any:
        return value.get_secret_value() if isinstance(value, SecretStr) else value


class _Pending(_Stored):
    state: str
    nonce: str
    verifier: SecretStr
    next: str


class _Session(_Stored):
    userinfo: dict[str, Any]
    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_at: float
    scopes: tuple[str, ...]
    ends_at: float
    """When the session ends, whatever the refreshes (``session_lifetime`` after sign-in)."""
    userinfo_stale: bool = False
    """The token was refreshed but the profile could not be read again yet (the provider was
    unreachable): the next request tries again."""


# A 408 or 429 says "not now", not "no": a refresh answered so keeps the session.
_TRY_AGAIN = frozenset({408, 429})


class _Refused(Exception):
    """The provider refused (4xx): the session or the code is no good."""


class _Unavailable(Exception):
    """The provider could not be reached or answered nonsense (try again later)."""


class _NoLongerMember(Exception):
    """The profile read after a refresh fails ``require_orgs`` / ``org_id``: session ended."""


_NOT_A_MEMBER = "You are not a member of an organisation this app requires"
_NO_LONGER_A_MEMBER = (
    "Your organisation memberships changed and this app requires one you no longer have; "
    f"sign in again at {LOGIN_PATH}"
)


def _deny(connection: HTTPConnection, status: int, detail: str) -> NoReturn:
    """Refuse a request (an HTTP status) or a WebSocket handshake (a close code, as
    ``HubBearer``: 1008 for 401/403, 1013 for 503)."""
    if connection.scope["type"] == "websocket":
        raise WebSocketException(code=1013 if status == 503 else 1008, reason=detail)
    headers = {"Retry-After": "5"} if status == 503 else None
    raise HTTPException(status, detail, headers)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods a browser may send cross-site with the cookie and that must change nothing."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}  # a WebSocket's origin is its page's
_HOST_PREFIX = "__Host-"
"""Cookie name prefix: the browser keeps such a cookie only if Secure, Path=/ and without a
Domain, so a sibling subdomain cannot set (toss) one of its own for this host."""

_Origin = tuple[str, str, int]
"""An origin as compared: (scheme, host, port), lowercase, the port explicit."""


def _origin_of(url: str) -> _Origin | None:
    """The origin of an ``Origin`` header or a URL; ``None`` when it has none that a page of
    this app could have (``null``, another scheme, garbage)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = _HTTP_SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a same-origin relative path (``/...``), else ``default``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(char) < 0x20 or char == "\\" for char in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _pending_key(login_id: str) -> str:
    """The store key of a sign-in in progress (bounded apart from sessions, see
    ``MemorySessionStore``)."""
    return PENDING_LOGIN_PREFIX + _key(login_id)


def _with_query(path: str, **params: str) -> str:
    separator = "&" if urlsplit(path).query else "?"
    return f"{path}{separator}{urlencode(params)}"


def _failure(status: int, message: str) -> HTMLResponse:
    from html import escape

    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign-in failed</title></head>"
        f"<body><h1>Sign-in failed</h1><p>{escape(message)}</p>"
        # target=_top: inside a Space's iframe the sign-in must run in the top window.
        f"<p><a href='{LOGIN_PATH}' target='_top'>Sign in again</a></p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _logout_page(next: str) -> HTMLResponse:
    from html import escape

    action = escape(_with_query(LOGOUT_PATH, next=next))
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign out</title></head>"
        f"<body><form method='post' action='{action}'>"
        "<button type='submit' id='signout'>Sign out</button></form></body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


class HubOAuth:
    """Sign in with Hugging Face: routes, dependencies and server-side sessions.

    On a Space with ``hf_oauth: true`` in its README, every argument has a default from the
    variables the Space injects::

        from typing import Annotated
        from fastapi import Depends, FastAPI
        from hub_auth.fastapi import HubOAuth, OAuthInfo

        oauth = HubOAuth()  # OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_SCOPES, ...
        app = FastAPI()
        app.include_router(oauth.router)  # /oauth/huggingface/login, /callback, /logout (POST)

        @app.get("/me")
        async def me(info: Annotated[OAuthInfo, Depends(oauth.user)]) -> dict[str, str]:
            return {"username": info.user.username}

    Elsewhere, register an OAuth app on the Hub (settings → Connected apps) with the redirect
    URI ``https://YOUR-HOST/oauth/huggingface/callback`` and pass ``client_id`` (and
    ``client_secret`` for a confidential app; without one, PKCE alone protects the code).

    Args:
        client_id: The OAuth app's client id (default ``OAUTH_CLIENT_ID``). Required.
        client_secret: Its secret (default ``OAUTH_CLIENT_SECRET``); ``None``: a public app.
        scopes: Scopes to ask for (default ``OAUTH_SCOPES``, else ``openid profile``);
            ``openid`` is always asked for.
        provider_url: The OpenID provider (default ``OPENID_PROVIDER_URL``, else the
            endpoint of ``auth``, else ``HF_ENDPOINT``, else ``https://huggingface.co``).
        redirect_url: The callback URL the provider redirects to (default
            ``https://SPACE_HOST/oauth/huggingface/callback`` on a Space, else the callback
            route on the URL the request came to). Its origin is then the app's own for the
            cross-site check (a proxy in front hides the scheme and host the browser used).
        session_store: Where sessions live (default: a ``MemorySessionStore``; use a
            ``RedisSessionStore`` when several replicas serve the app).
        session_lifetime: Seconds a session lives after sign-in (default 7 days); the
            access token is refreshed meanwhile.
        refresh_margin: Refresh the access token when it has less than this many seconds
            left (default 300).
        require_orgs: Organisation names; ``oauth.user`` answers 403 unless the user is in
            at least one of them (ask for the ``read-memberships`` scope). Checked again after
            every refresh: a user no longer in one loses the session.
        org_id: An organisation id passed to the provider as ``orgIds`` (the user must be in
            it to sign in at all); when the profile lists organisations, checked again after
            every refresh too.
        same_site: ``"lax"``, or ``"none"`` (with Secure) for an app shown in an iframe;
            default ``"none"`` on a Space (its page embeds the app), else ``"lax"``.
        cookie_name: Name of the session cookie (with the ``__Host-`` prefix when Secure).
        timeout: Seconds one request to the provider may take.
        auth: A ``HubAuth`` whose HTTP client (its aiohttp session) carries the requests to
            the provider; default ``app.state.hub_auth`` when the app sets one, else a client
            of HubOAuth's own, closed on the app's shutdown (``lifespan``) or ``aclose()``.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: str | Sequence[str] | None = None,
        provider_url: str | None = None,
        *,
        redirect_url: str | None = None,
        session_store: SessionStore | None = None,
        session_lifetime: float = 7 * 86400.0,
        refresh_margin: float = SESSION_REFRESH_MARGIN,
        require_orgs: Sequence[str] | None = None,
        org_id: str | None = None,
        same_site: Literal["lax", "none"] | None = None,
        cookie_name: str = "hub_oauth_session",
        timeout: float = 10.0,
        auth: HubAuth | None = None,
    ) -> None:
        client_id = client_id or os.environ.get("OAUTH_CLIENT_ID") or None
        if not client_id:
            raise ValueError(
                "HubOAuth needs an OAuth client id: pass client_id=... (register an app in "
                "your Hugging Face settings, Connected apps) or, on a Space, add "
                "'hf_oauth: true' to its README so that OAUTH_CLIENT_ID is set"
            )
        if session_lifetime <= 0 or refresh_margin < 0 or timeout <= 0:
            raise ValueError("session_lifetime and timeout must be > 0, refresh_margin >= 0")
        secret = (
            client_secret if client_secret is not None else os.environ.get("OAUTH_CLIENT_SECRET")
        )
        if scopes is None:
            scopes = os.environ.get("OAUTH_SCOPES") or "openid profile"
        scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
        space_hosts = [h.strip() for h in (os.environ.get("SPACE_HOST") or "").split(",")]
        space_hosts = [host for host in space_hosts if host]
        space_host = space_hosts[0] if space_hosts else ""
        self.client_id = client_id
        self._client_secret = SecretStr(secret) if secret else None
        self.scopes: tuple[str, ...] = tuple(dict.fromkeys(["openid", *scope_list]))
        self.provider_url = openid_provider_url(
            provider_url, os.environ, hub_endpoint=auth.endpoint if auth is not None else None
        )
        if redirect_url is None and space_host:
            redirect_url = f"https://{space_host}{CALLBACK_PATH}"
        self.redirect_url = redirect_url
        self.session_store: SessionStore = (
            session_store if session_store is not None else MemorySessionStore()
        )
        self.session_lifetime = session_lifetime
        self.refresh_margin = refresh_margin
        self.require_orgs = frozenset(require_orgs or ())
        self.org_id = org_id
        self._in_space = bool(space_host)
        self.same_site: Literal["lax", "none"] = same_site or ("none" if space_host else "lax")
        self.cookie_name = cookie_name.removeprefix(_HOST_PREFIX)
        self._login_cookie = f"{self.cookie_name}_login"
        # The app's own origins when the deployment names them: the redirect URL's (a proxy
        # in front may hide the scheme and host the browser used), and on a Space every
        # SPACE_HOST (its hf.space host and custom domains), always https.
        configured = [redirect_url or "", *(f"https://{host}" for host in space_hosts)]
        self._origins = frozenset(
            origin for origin in map(_origin_of, configured) if origin is not None
        )
        self._timeout = float(timeout)
        self._auth = auth
        # The client HubOAuth opened itself (no HubAuth to borrow from), and its loop.
        self._own_client: HubClient | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._jwks: dict[str, Any] | None = None
        self._refresh_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # include_router merges this lifespan into the app's: the own client closes on shutdown.
        self.router = APIRouter(lifespan=self._lifespan)
        self.router.add_api_route(LOGIN_PATH, self.login, methods=["GET"], include_in_schema=False)
        self.router.add_api_route(
            CALLBACK_PATH, self.callback, methods=["GET"], include_in_schema=False
        )
        # One route for both methods: a GET shows the button that POSTs (see ``logout``).
        self.router.add_api_route(
            LOGOUT_PATH, self.logout, methods=["GET", "POST"], include_in_schema=False
        )

    def __repr__(self) -> str:
        kind = "confidential" if self._client_secret else "public"
        return f"<HubOAuth client_id={self.client_id!r} {kind} provider={self.provider_url!r}>"

    # -- the HTTP client -------------------------------------------------------------------

    def _http(self, connection: HTTPConnection) -> HubClient:
        """The client for the provider requests: ``auth``'s, ``app.state.hub_auth``'s, or
        HubOAuth's own (opened once per event loop, inside it)."""
        auth = self._auth
        if auth is None:
            shared = getattr(connection.app.state, "hub_auth", None)
            auth = shared if isinstance(shared, HubAuth) else None
        if auth is not None:
            # HubAuth's HubClient: its session, pool and settings are the app's shared ones.
            return auth._client
        loop = asyncio.get_running_loop()
        client = self._own_client
        if client is None:
            # No keep-alive: sign-ins and refreshes are rare per user, and a session whose
            # loop is gone (a test client's loop per request) then holds no open socket.
            client = self._own_client = HubClient(
                Settings.resolve(endpoint=self.provider_url, timeout=self._timeout, environ={}),
                keep_alive=False,
            )
        elif self._own_loop is not loop:
            # Another loop: the old session cannot be closed from here; it is dropped and a
            # new one opens on this loop.
            client.drop_session_of_another_loop()
        self._own_loop = loop
        return client

    async def aclose(self) -> None:
        """Close the HTTP client HubOAuth opened for itself (a borrowed one stays open).

        Called on the app's shutdown; HubOAuth opens a new client if it is used again.
        """
        client, self._own_client = self._own_client, None
        if client is None:
            return
        if self._own_loop is asyncio.get_running_loop():
            await client.close()
        else:
            client.drop_session_of_another_loop()  # its loop is another one: not closable here
        self._own_loop = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    # -- routes ------------------------------------------------------------------------------

    async def login(self, request: Request, next: str | None = None) -> Response:
        """Start a sign-in: remember it server-side and send the browser to the consent page."""
        if next is not None and len(next.encode("utf-8", "surrogatepass")) > MAX_NEXT_BYTES:
            return _failure(
                400, f"The page to return to is too long (over {MAX_NEXT_BYTES} bytes)."
            )
        try:
            metadata = await self._provider_metadata(self._http(request))
        except _Unavailable as exc:
            return _failure(503, f"Hugging Face could not be reached ({exc}). Try again soon.")
        pending = _Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=SecretStr(secrets.token_urlsafe(48)),
            next=safe_next(next),
        )
        login_id = secrets.token_urlsafe(32)
        await self.session_store.save(
            _pending_key(login_id), pending.model_dump_json(), _LOGIN_LIFETIME
        )
        params = {
            "client_id": self.client_id,
            "redirect_uri": self._redirect_uri(request),
            "response_type": "code",
            "scope": " ".join(self.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pkce_challenge(pending.verifier.get_secret_value()),
            "code_challenge_method": "S256",
        }
        if self.org_id is not None:
            params["orgIds"] = self.org_id
        response = RedirectResponse(
            f"{metadata['authorization_endpoint']}?{urlencode(params)}", status_code=302
        )
        self._set_cookie(request, response, self._login_cookie, login_id, _LOGIN_LIFETIME)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def callback(self, request: Request) -> Response:
        """The provider's answer: finish the sign-in, or go back to the app with a message."""
        login_id = request.cookies.get(self._cookie_name(request, self._login_cookie))
        pending = None
        if login_id:
            raw = await self.session_store.load(_pending_key(login_id))
            await self.session_store.delete(_pending_key(login_id))  # single use, always
            if raw is not None:
                try:
                    pending = _Pending.model_validate_json(raw)
                except ValidationError:
                    pending = None
        response = self._callback_failure(request, pending)
        if response is None:
            assert pending is not None
            with _telemetry.flow(_telemetry.SIGN_IN) as traced:
                response = traced.responded(await self._finish(request, pending))
        self._clear_cookie(request, response, self._login_cookie)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _callback_failure(self, request: Request, pending: _Pending | None) -> Response | None:
        query = request.query_params
        if pending is None:
            return _failure(400, "This sign-in link has expired or was already used.")
        if not hmac.compare_digest(query.get("state", "").encode(), pending.state.encode()):
            return _failure(
                400, "The sign-in answer does not match the sign-in this browser began."
            )
        error = query.get("error")
        if error is not None:
            code = "access_denied" if error == "access_denied" else "failed"
            logger.info("Sign in with Hugging Face: the provider answered %s", code)
            return RedirectResponse(
                _with_query(pending.next, **{ERROR_PARAMETER: code}), status_code=302
            )
        if not query.get("code"):
            return _failure(400, "The sign-in answer has no authorization code.")
        return None

    async def _finish(self, request: Request, pending: _Pending) -> Response:
        http = self._http(request)
        try:
            metadata, tokens = await self._grant(
                http,
                {
                    "grant_type": AUTHORIZATION_CODE_GRANT,
                    "code": request.query_params["code"],
                    "redirect_uri": self._redirect_uri(request),
                    "code_verifier": pending.verifier.get_secret_value(),
                },
            )
            await self._verify_id_token(http, metadata, tokens.get("id_token"), pending.nonce)
            userinfo = await self._userinfo(http, metadata, str(tokens["access_token"]))
        except _Refused as exc:
            logger.warning("Sign in with Hugging Face refused: %s", exc)
            return _failure(400, f"Hugging Face refused the sign-in: {exc}.")
        except _Unavailable as exc:
            logger.warning("Sign in with Hugging Face failed: %s", exc)
            return _failure(503, f"Hugging Face could not be reached ({exc}). Try again soon.")
        session = _Session(
            userinfo=userinfo,
            access_token=SecretStr(str(tokens["access_token"])),
            refresh_token=_optional_secret(tokens.get("refresh_token")),
            expires_at=time.time()
            + token_lifetime(tokens.get("expires_in"), _DEFAULT_TOKEN_LIFETIME),
            scopes=tuple(str(tokens.get("scope") or " ".join(self.scopes)).split()),
            ends_at=time.time() + self.session_lifetime,
        )
        previous = request.cookies.get(self._cookie_name(request, self.cookie_name))
        if previous:  # signing in again replaces the old session, server-side too
            await self.session_store.delete(_key(previous))
        session_id = secrets.token_urlsafe(32)  # a new id: no session fixation
        await self.session_store.save(
            _key(session_id), session.model_dump_json(), self.session_lifetime
        )
        response = RedirectResponse(pending.next, status_code=302)
        self._set_cookie(request, response, self.cookie_name, session_id, self.session_lifetime)
        return response

    async def logout(self, request: Request, next: str | None = None) -> Response:
        """``POST``: end the session (server-side too) and go to ``next`` (303); refused (403)
        from another site. ``GET``: a page with a "Sign out" button that posts here, so that
        a link (an image, a redirect) from anywhere cannot sign anyone out, and old links to
        ``/logout?next=...`` still lead to signing out."""
        target = safe_next(next)
        if request.method != "POST":
            return _logout_page(target)
        self._refuse_cross_site(request)
        session_id = request.cookies.get(self._cookie_name(request, self.cookie_name))
        if session_id:
            key = _key(session_id)
            async with self._session_lock(key):  # after a refresh in flight, not before
                await self.session_store.delete(key)
        response = RedirectResponse(target, status_code=303)
        self._clear_cookie(request, response, self.cookie_name)
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- dependencies --------------------------------------------------------------------------

    async def user(self, connection: HTTPConnection) -> OAuthInfo:
        """The signed-in user; 401 when nobody is (``Depends(oauth.user)``)."""
        info = await self.optional_user(connection)
        if info is None:
            _deny(connection, 401, "Sign in with Hugging Face first")
        return info

    async def optional_user(self, connection: HTTPConnection) -> OAuthInfo | None:
        """The signed-in user, or ``None`` (``Depends(oauth.optional_user)``).

        A request from another site that could change something is refused (403; a WebSocket
        handshake: 1008): an unsafe method (not GET, HEAD or OPTIONS) or a WebSocket with
        ``Sec-Fetch-Site: cross-site`` or an ``Origin`` other than the app's own (see
        ``_refuse_cross_site``). The browser sends the session cookie with such requests
        (SameSite=None in a Space's iframe), so without this any page could act as the user.
        """
        self._refuse_cross_site(connection)
        session_id = connection.cookies.get(self._cookie_name(connection, self.cookie_name))
        if not session_id:
            return None
        key = _key(session_id)
        session = await self._load(key)
        if session is None:
            return None
        if session.userinfo_stale or session.expires_at - self.refresh_margin <= time.time():
            try:
                session = await self._refreshed(self._http(connection), key)
            except _Unavailable:
                _deny(connection, 503, "Hugging Face could not be reached; try again soon")
            except _NoLongerMember:
                _deny(connection, 403, _NO_LONGER_A_MEMBER)
            if session is None:
                return None
        info = OAuthInfo(
            user=OAuthUserInfo.model_validate(session.userinfo),
            access_token=session.access_token,
            expires_at=datetime.fromtimestamp(session.expires_at, UTC),
            scopes=session.scopes,
        )
        if not self._member(info.user):
            _deny(connection, 403, _NOT_A_MEMBER)
        return info

    def _member(self, user: OAuthUserInfo) -> bool:
        """Whether ``user`` meets ``require_orgs`` and, when the profile lists organisations
        (scope ``read-memberships``), ``org_id``."""
        if self.require_orgs and not self.require_orgs & {org.username for org in user.orgs}:
            return False
        listed = "orgs" in user.model_fields_set
        return self.org_id is None or not listed or self.org_id in {org.sub for org in user.orgs}

    def login_error(self, connection: HTTPConnection) -> str | None:
        """A message for the user when the last sign-in did not complete (else ``None``).

        The callback sends the browser back to ``next`` with ``?hub_oauth_error=...``; the
        message is fixed text chosen by that code, never text from the URL.
        """
        code = connection.query_params.get(ERROR_PARAMETER)
        if code is None:
            return None
        return _ERROR_MESSAGES.get(code, _ERROR_MESSAGES["failed"])

    # -- sessions --------------------------------------------------------------------------

    async def _load(self, key: str) -> _Session | None:
        raw = await self.session_store.load(key)
        if raw is None:
            return None
        try:
            session = _Session.model_validate_json(raw)
        except ValidationError:
            session = None
        if session is None or session.ends_at <= time.time():
            await self.session_store.delete(key)
            return None
        return session

    @contextlib.asynccontextmanager
    async def _session_lock(self, key: str) -> AsyncIterator[None]:
        """Held while a session is refreshed or ended: this process's lock, then the store's."""
        lock = self._refresh_locks.get(key)
        if lock is None:
            lock = self._refresh_locks[key] = asyncio.Lock()
        async with lock, self.session_store.lock(key, self._timeout):
            yield

    async def _refreshed(self, http: HubClient, key: str) -> _Session | None:
        """The session with a fresh access token and the profile read again with it; ``None``
        when it ended; ``_NoLongerMember`` when the new profile fails the app's organisation
        rules (the session is ended too)."""
        async with self._session_lock(key):
            session = await self._load(key)  # another request may have refreshed meanwhile
            if session is None:
                return None
            if session.expires_at - self.refresh_margin > time.time():
                if not session.userinfo_stale:
                    return session
                return await self._reread_userinfo(http, key, session)
            if session.refresh_token is None:
                return await self._end_if_expired(key, session)
            try:
                with _telemetry.flow(_telemetry.SESSION_REFRESH):
                    _, tokens = await self._grant(
                        http,
                        {
                            "grant_type": REFRESH_TOKEN_GRANT,
                            "refresh_token": session.refresh_token.get_secret_value(),
                        },
                    )
            except _Refused as exc:
                return await self._end_refused(key, "refresh", exc)
            except _Unavailable as exc:
                logger.warning("Sign in with Hugging Face: could not refresh (%s)", exc)
                if session.expires_at > time.time():
                    return session
                raise  # never an expired token: the caller answers 503
            session = session.model_copy(
                update={
                    "access_token": SecretStr(str(tokens["access_token"])),
                    "refresh_token": _optional_secret(tokens.get("refresh_token"))
                    or session.refresh_token,
                    "expires_at": time.time()
                    + token_lifetime(tokens.get("expires_in"), _DEFAULT_TOKEN_LIFETIME),
                    "userinfo_stale": True,
                }
            )
            return await self._reread_userinfo(http, key, session, refreshed=True)

    async def _reread_userinfo(
        self, http: HubClient, key: str, session: _Session, *, refreshed: bool = False
    ) -> _Session | None:
        """Read the profile again with the session's (new) token, check the organisations,
        save; under the session's lock. Memberships are decided again at every refresh: a
        user removed from an organisation loses access at the next one, not at sign-out."""
        try:
            metadata = await self._provider_metadata(http)
            userinfo = await self._userinfo(http, metadata, session.access_token.get_secret_value())
        except _Refused as exc:
            return await self._end_refused(key, "profile", exc)
        except _Unavailable as exc:
            logger.warning("Sign in with Hugging Face: could not read the profile (%s)", exc)
            if not refreshed:
                return session  # still stale: the next request tries again
        else:
            if not self._member(OAuthUserInfo.model_validate(userinfo)):
                logger.info("Sign in with Hugging Face: memberships changed; session ended")
                await self.session_store.delete(key)
                raise _NoLongerMember
            session = session.model_copy(update={"userinfo": userinfo, "userinfo_stale": False})
        lifetime = max(1.0, session.ends_at - time.time())
        if not await save_if_present(self.session_store, key, session.model_dump_json(), lifetime):
            return None  # signed out meanwhile: a refresh never brings a session back
        return session

    async def _end_refused(self, key: str, what: str, exc: _Refused) -> _Session | None:
        """The provider refused the session's refresh or its new token: the session ends
        (``None``, what ``_refreshed`` answers for an ended session)."""
        logger.info("Sign in with Hugging Face: %s refused (%s); session ended", what, exc)
        await self.session_store.delete(key)
        return None

    async def _end_if_expired(self, key: str, session: _Session) -> _Session | None:
        if session.expires_at > time.time():
            return session
        await self.session_store.delete(key)
        return None

    # -- cookies and URLs ------------------------------------------------------------------

    def _redirect_uri(self, request: Request) -> str:
        if self.redirect_url is not None:
            return self.redirect_url
        return str(request.url.replace(path=CALLBACK_PATH, query=None, fragment=None))

    def _secure(self, connection: HTTPConnection) -> bool:
        """Whether the cookies are Secure: always, except for plain http on loopback."""
        scheme = str(connection.scope.get("scheme", "http"))
        scheme = _HTTP_SCHEMES.get(scheme, scheme)
        loopback_http = scheme == "http" and is_loopback_host(connection.url.hostname)
        return self.same_site == "none" or self._in_space or not loopback_http

    def _cookie_name(self, connection: HTTPConnection, name: str) -> str:
        """``name``, with the ``__Host-`` prefix when the cookies are Secure (a cookie without
        it is then not read: a sibling subdomain could have set it)."""
        return _HOST_PREFIX + name if self._secure(connection) else name

    def _set_cookie(
        self, request: Request, response: Response, name: str, value: str, max_age: float
    ) -> None:
        secure = self._secure(request)
        response.set_cookie(
            _HOST_PREFIX + name if secure else name,
            value,
            max_age=int(max_age),
            path="/",  # and no Domain: what __Host- requires
            httponly=True,
            secure=secure,
            samesite=self.same_site,
        )

    def _clear_cookie(self, request: Request, response: Response, name: str) -> None:
        secure = self._secure(request)  # a __Host- cookie is only replaced by a Secure one
        response.delete_cookie(
            self._cookie_name(request, name),
            path="/",
            secure=secure,
            httponly=True,
            samesite=self.same_site,
        )

    def _own_origin(self, connection: HTTPConnection, origin: _Origin | None) -> bool:
        """Whether ``origin`` is this app's: one the deployment names (``redirect_url``,
        ``SPACE_HOST``), else the scheme and ``Host`` the request came with."""
        if origin is None:
            return False
        if self._origins:
            return origin in self._origins
        host = connection.headers.get("host", "")
        return origin == _origin_of(f"{connection.scope.get('scheme', 'http')}://{host}")

    def _refuse_cross_site(self, connection: HTTPConnection) -> None:
        """Refuse (403, or 1008 on a WebSocket) what another site's page may have sent with
        the user's cookie: an unsafe method or a WebSocket handshake that the browser marks
        ``Sec-Fetch-Site: cross-site`` or whose ``Origin`` is not the app's own.

        A request with neither header is let through: browsers send ``Origin`` with every
        cross-site POST, PUT, PATCH, DELETE and WebSocket handshake, so it comes from a program
        (curl, a test), which holds the cookie itself and needs no protection from itself.
        """
        websocket = connection.scope["type"] == "websocket"
        if not websocket and connection.scope.get("method") in _SAFE_METHODS:
            return
        origin = connection.headers.get("origin")
        if connection.headers.get("sec-fetch-site", "").lower() == "cross-site" or (
            origin is not None and not self._own_origin(connection, _origin_of(origin))
        ):
            what = "WebSocket" if websocket else "Request"
            _deny(connection, 403, f"{what} from another site refused")

    # -- the provider ----------------------------------------------------------------------

    async def _get_json(
        self, http: HubClient, url: str, headers: Mapping[str, str] | None = None
    ) -> Any:
        answered = await http.request("GET", url, headers=headers or {}, time_limit=self._timeout)
        if isinstance(answered, Err):
            raise _Unavailable(answered.error.message)
        status, path = answered.value.status, urlsplit(url).path
        if 400 <= status < 500 and status not in _TRY_AGAIN:
            raise _Refused(f"HTTP {status} from {path}")
        if status != 200:
            raise _Unavailable(f"HTTP {status} from {path}")
        try:
            return json.loads(answered.value.body)
        except (ValueError, RecursionError):
            raise _Unavailable(f"the answer from {path} is not JSON") from None

    async def _provider_metadata(self, http: HubClient) -> dict[str, Any]:
        cached = self._metadata
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        url = self.provider_url + DISCOVERY_PATH
        try:
            metadata = await self._get_json(http, url)
        except _Refused as exc:
            raise _Unavailable(str(exc)) from None
        names = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not isinstance(metadata, dict) or not all(
            isinstance(metadata.get(name), str) for name in names
        ):
            raise _Unavailable("the provider's openid-configuration is incomplete")
        origin = urlsplit(self.provider_url)[:2]
        endpoints = [*names[1:], "userinfo_endpoint"]
        if any(urlsplit(str(metadata.get(name, url)))[:2] != origin for name in endpoints):
            raise _Unavailable("the provider's endpoints are not on its own origin")
        self._metadata = (time.monotonic() + _METADATA_LIFETIME, metadata)
        return metadata

    async def _grant(
        self, http: HubClient, form: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The provider's metadata and its token endpoint's answer to ``form``."""
        metadata = await self._provider_metadata(http)
        return metadata, await self._token_request(http, metadata, form)

    async def _token_request(
        self, http: HubClient, metadata: Mapping[str, Any], form: dict[str, str]
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        form = {**form, "client_id": self.client_id}
        if self._client_secret is not None:
            pair = f"{self.client_id}:{self._client_secret.get_secret_value()}".encode()
            headers["Authorization"] = MaskedStr("Basic " + base64.b64encode(pair).decode())
        answered = await http.request(
            "POST",
            str(metadata["token_endpoint"]),
            headers=headers,
            form=form,
            time_limit=self._timeout,
        )
        if isinstance(answered, Err):
            raise _Unavailable(f"the token endpoint: {answered.error.message}")
        status = answered.value.status
        try:
            body = json.loads(answered.value.body)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            raise _Unavailable("the token endpoint answered something else than JSON")
        if 400 <= status < 500 and status not in _TRY_AGAIN:
            error = body.get("error")
            raise _Refused(error if isinstance(error, str) else f"HTTP {status}")
        if status != 200 or not isinstance(body.get("access_token"), str):
            raise _Unavailable(f"HTTP {status} from the token endpoint")
        return body

    async def _verify_id_token(
        self, http: HubClient, metadata: Mapping[str, Any], id_token: object, nonce: str
    ) -> None:
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        if not isinstance(id_token, str):
            raise _Refused("no id_token in the answer")
        for attempt in range(2):  # once more with fresh keys: the provider may have rotated
            if self._jwks is None or attempt == 1:
                self._jwks = await self._get_json(http, str(metadata["jwks_uri"]))
            try:
                keys = KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
                token = jwt.decode(id_token, keys, algorithms=["RS256"])
                break
            except JoseError as exc:
                if attempt == 1:
                    raise _Refused(f"the id_token is not valid ({exc.error})") from None
            except (ValueError, TypeError, KeyError):
                if attempt == 1:
                    raise _Refused("the id_token or the provider's keys are malformed") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise _Refused(f"the id_token is not valid ({exc.error})") from None

    async def _userinfo(
        self, http: HubClient, metadata: Mapping[str, Any], access_token: str
    ) -> dict[str, Any]:
        url = metadata.get("userinfo_endpoint")
        if not isinstance(url, str):
            raise _Unavailable("the provider has no userinfo endpoint")
        bearer = MaskedStr(f"Bearer {access_token}")
        body = await self._get_json(http, url, {"Authorization": bearer})
        try:
            OAuthUserInfo.model_validate(body)
        except ValidationError:
            raise _Unavailable("the provider's userinfo answer is malformed") from None
        return dict(body)


def _optional_secret(value: object) -> SecretStr | None:
    return SecretStr(value) if isinstance(value, str) and value else None
