"""FakeHub's OAuth and OIDC side: device login, refresh, token exchange, and their test controls.

``FakeHub`` owns one ``FakeOAuth`` (``hub.oauth``) and serves its routes:

- ``POST /oauth/device`` (RFC 8628 device authorization) and ``GET /oauth/device`` (the page
  where a person types the code and approves or denies it);
- ``POST /oauth/token``: one endpoint, three grants, chosen by ``grant_type`` (form-encoded
  for the device-code and refresh-token grants, JSON for the token exchange, as on the Hub);
- a stand-in for GitHub Actions' id-token URL, and an OIDC id-token minter for CI tests.

Access tokens it issues are registered with the hub (so whoami knows them) with a lifetime,
after which whoami answers 401. Facts: ``shared/reference/OAUTH_FACTS.md``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from hub_auth._fakehub_openid import FakeOpenIDProvider, OAuthApp
    from hub_auth.testing import FakeHub, FakeUser

__all__ = [
    "DEVICE_CODE_GRANT",
    "REFRESH_TOKEN_GRANT",
    "TOKEN_EXCHANGE_GRANT",
    "FakeOAuth",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT = "refresh_token"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
AUTHORIZATION_CODE_GRANT = "authorization_code"  # "Sign in with HF": _fakehub_openid.py

_JSON_TYPE = "application/json; charset=utf-8"
_ALPHABET = string.ascii_letters + string.digits

Grant = Callable[[Mapping[str, str]], Awaitable[web.StreamResponse]]


def oauth_error(status: int, error: str, description: str | None = None) -> web.Response:
    """An OAuth error answer (RFC 6749 §5.2): ``{"error": ..., "error_description": ...}``."""
    body: dict[str, str] = {"error": error}
    if description is not None:
        body["error_description"] = description
    return web.Response(
        status=status, body=json.dumps(body).encode(), headers={"Content-Type": _JSON_TYPE}
    )


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": _JSON_TYPE, "Cache-Control": "no-store"},
    )


def random_secret(prefix: str, length: int = 34) -> str:
    """``prefix`` and ``length`` random letters or digits (tokens, codes, refresh tokens)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class FakeOAuth:
    """The OAuth/OIDC endpoints of one ``FakeHub`` and the controls tests drive them with."""

    def __init__(self, hub: FakeHub) -> None:
        self._hub = hub
        self._lock = threading.Lock()
        self.access_token_lifetime: float = 30 * 86400.0
        """Seconds an issued access token lives (``expires_in``); whoami answers 401 after."""
        self._token_requests: list[str] = []
        self._refresh_tokens: dict[str, FakeUser] = {}
        """Live refresh tokens and whose they are: one table for every grant that issues them."""
        self._refresh_failures: list[int] = []  # statuses of the next refresh grants to fail
        self.refresh_delay: float = 0.0
        """Seconds the refresh-token grant waits before answering (to make refreshes overlap)."""
        self._openid: FakeOpenIDProvider | None = None  # "Sign in with HF", made on first use

    # -- routes --------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the OAuth routes (before FakeHub's catch-all 404)."""
        router.add_post("/oauth/token", self._token)
        from hub_auth._fakehub_openid import add_openid_routes

        add_openid_routes(router, lambda: self.openid)

    # -- what tests read -----------------------------------------------------------------

    @property
    def token_requests(self) -> list[str]:
        """The ``grant_type`` of every ``POST /oauth/token`` so far, in order."""
        with self._lock:
            return list(self._token_requests)

    # -- issuing -------------------------------------------------------------------------

    def issue_access_token(
        self, user: FakeUser, *, lifetime: float | None = None, prefix: str = "hf_oauth_"
    ) -> tuple[str, float]:
        """Mint an access token for ``user``, known to whoami until it expires.

        Returns the token and its lifetime in seconds (``access_token_lifetime`` by default).
        """
        seconds = self.access_token_lifetime if lifetime is None else lifetime
        token = random_secret(prefix)
        self._hub.add_token(token, user, expires_at=time.time() + seconds)
        return token, seconds

    # -- refresh tokens ------------------------------------------------------------------

    def mint_refresh_token(self, user: FakeUser) -> str:
        """A new refresh token for ``user``, live until spent or revoked.

        Every grant that hands out a refresh token makes it here (the secret guard of the
        test suite wraps this method to know them all).
        """
        refresh_token = random_secret("hf_oauth_refresh_")
        with self._lock:
            self._refresh_tokens[refresh_token] = user
        return refresh_token

    def issue_login(self, user: FakeUser, *, lifetime: float | None = None) -> dict[str, Any]:
        """What a completed device login hands out for ``user``, without the device flow.

        The token JSON (``access_token``, ``refresh_token``, ``expires_in``, ``token_type``),
        its access token known to whoami for ``lifetime`` seconds and its refresh token live:
        store it as huggingface_hub does to set up a stored OAuth login.
        """
        access_token, seconds = self.issue_access_token(user, lifetime=lifetime)
        return {
            "access_token": access_token,
            "refresh_token": self.mint_refresh_token(user),
            "expires_in": int(seconds),
            "token_type": "bearer",
        }

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Make ``refresh_token`` answer ``invalid_grant`` from now on (a revoked session)."""
        with self._lock:
            self._refresh_tokens.pop(refresh_token, None)

    def fail_next_refresh(self, status: int = 503, count: int = 1) -> None:
        """Answer the next ``count`` refresh-token grants with ``status`` (nothing changes)."""
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        with self._lock:
            self._refresh_failures.extend([status] * count)

    @property
    def refresh_requests(self) -> int:
        """Refresh-token grants received so far, whatever their outcome."""
        with self._lock:
            return self._token_requests.count(REFRESH_TOKEN_GRANT)

    @property
    def live_refresh_tokens(self) -> int:
        """How many refresh tokens are live (issued, neither spent nor revoked)."""
        with self._lock:
            return len(self._refresh_tokens)

    # -- POST /oauth/token ---------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        params = await _read_params(request)
        if params is None:
            return oauth_error(400, "invalid_request", "the body must be a form or a JSON object")
        grant_type = params.get("grant_type", "")
        with self._lock:
            self._token_requests.append(grant_type)
        grants: dict[str, Grant] = {
            DEVICE_CODE_GRANT: self._device_code_grant,
            REFRESH_TOKEN_GRANT: self._refresh_token_grant,
            TOKEN_EXCHANGE_GRANT: self._token_exchange_grant,
        }
        if grant_type == AUTHORIZATION_CODE_GRANT:
            grants[grant_type] = partial(
                self.openid.authorization_code_grant,
                authorization=request.headers.get("Authorization"),
            )
        grant = grants.get(grant_type)
        if grant is None:
            return oauth_error(400, "unsupported_grant_type", f"unknown grant {grant_type!r}")
        return await grant(params)

    async def _device_code_grant(self, params: Mapping[str, str]) -> web.StreamResponse:
        return oauth_error(400, "unsupported_grant_type", "device login is not emulated yet")

    async def _refresh_token_grant(self, params: Mapping[str, str]) -> web.StreamResponse:
        """``grant_type=refresh_token``: a new access token and a new refresh token (rotation:
        the one presented is spent and answers ``invalid_grant`` from then on)."""
        if self.refresh_delay > 0:
            await asyncio.sleep(self.refresh_delay)
        presented = params.get("refresh_token", "")
        if not presented or not params.get("client_id"):
            return oauth_error(400, "invalid_request", "refresh_token and client_id are required")
        with self._lock:
            if self._refresh_failures:
                status = self._refresh_failures.pop(0)
                return oauth_error(status, "server_error", "refresh failed (injected fault)")
            user = self._refresh_tokens.pop(presented, None)
        if user is None:
            return oauth_error(400, "invalid_grant", "the refresh token is invalid or expired")
        access_token, seconds = self.issue_access_token(user)
        return json_response(
            {
                "access_token": access_token,
                "refresh_token": self.mint_refresh_token(user),
                "expires_in": int(seconds),
                "token_type": "bearer",
            }
        )

    async def _token_exchange_grant(self, params: Mapping[str, str]) -> web.StreamResponse:
        return oauth_error(400, "unsupported_grant_type", "token exchange is not emulated yet")

    # -- "Sign in with Hugging Face" (web apps): hub_auth/_fakehub_openid.py ---------------

    @property
    def openid(self) -> FakeOpenIDProvider:
        """The OpenID provider side (discovery, consent page, code grant, userinfo, JWKS)."""
        from hub_auth._fakehub_openid import FakeOpenIDProvider  # joserfc: imported on use

        with self._lock:
            if self._openid is None:
                self._openid = FakeOpenIDProvider(self, self._hub)
            return self._openid

    def register_app(self, client_id: str | None = None, **fields: Any) -> OAuthApp:
        """Register an OAuth app (``FakeOpenIDProvider.register_app``)."""
        return self.openid.register_app(client_id, **fields)

    def sign_in_browser(self, user: FakeUser | None) -> None:
        """Who is signed in at the fake Hub when a browser reaches the consent page."""
        self.openid.sign_in_browser(user)


async def _read_params(request: web.Request) -> dict[str, str] | None:
    """The request's parameters: a JSON object (token exchange) or a form (the others)."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        return {str(key): str(value) for key, value in body.items()}
    form = await request.post()
    return {key: value for key, value in form.items() if isinstance(value, str)}
