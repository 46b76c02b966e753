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
import base64
import html
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from aiohttp import web

from hub_auth.testing._openid import (
    AUTHORIZATION_CODE_GRANT,
    FakeOpenIDProvider,
    OAuthApp,
    add_openid_routes,
)
from hub_auth.testing._pages import JSON_TYPE, html_page, json_response, oauth_error, reason
from hub_auth.testing._users import FakeUser, TokenTable, random_secret

__all__ = [
    "DEVICE_CODE_GRANT",
    "GITHUB_ID_TOKEN_PATH",
    "ID_TOKEN_TYPE",
    "REFRESH_TOKEN_GRANT",
    "TOKEN_EXCHANGE_GRANT",
    "FakeOAuth",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT = "refresh_token"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
GITHUB_ID_TOKEN_PATH = "/_fakehub/github/id-token"
"""FakeHub's stand-in for GitHub Actions' ``ACTIONS_ID_TOKEN_REQUEST_URL``."""

Grant = Callable[[Mapping[str, str]], Awaitable[web.StreamResponse]]


class FakeOAuth:
    """The OAuth/OIDC endpoints of one ``FakeHub`` and the controls tests drive them with."""

    def __init__(self, hub: TokenTable) -> None:
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
        # -- OIDC exchange (Trusted Publishers) state --
        self.exchange_token_lifetime: float = 3600.0
        """``expires_in`` of tokens issued by the token exchange (the Hub's: one hour)."""
        self.oidc_audience: str | None = None
        """The ``aud`` the exchange accepts; ``None``: FakeHub's own URL (``hub.url``)."""
        self._id_tokens: dict[str, _IdToken] = {}
        self._exchange_requests: list[dict[str, str]] = []
        self._github = _GitHubStandIn(request_token=random_secret("ghs_fake_"))
        self._github_requests: list[dict[str, str]] = []
        self._exchange_faults: list[tuple[int, bytes]] = []
        # Device login (RFC 8628): grants by device code, their user codes, the queued faults.
        self.device_interval: float = 5.0
        """Seconds between polls that ``POST /oauth/device`` asks for (tests use e.g. 0.05)."""
        self.device_expires_in: float = 300.0
        """Seconds a device code lives (``expires_in``; the Hub says 300)."""
        self.browser_user: FakeUser | None = None
        """Who approves on the ``/oauth/device`` page (default: ``browser-user``)."""
        self._device_grants: dict[str, _DeviceGrant] = {}
        self._user_codes: dict[str, str] = {}
        self._slow_downs = 0
        self._poll_failures: list[list[int]] = []  # [status, remaining count]
        self._echoes: list[str] = []  # OAuth errors of the next polls that echo the device code
        self._openid: FakeOpenIDProvider | None = None  # "Sign in with HF", made on first use

    # -- routes --------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the OAuth routes (before FakeHub's catch-all 404)."""
        router.add_post("/oauth/token", self._token)
        router.add_get(GITHUB_ID_TOKEN_PATH, self._github_id_token)
        router.add_post("/oauth/device", self._device_authorization)
        router.add_get("/oauth/device", self._device_page)
        router.add_post("/oauth/device/confirm", self._device_confirm)
        add_openid_routes(router, lambda: self.openid)

    # -- what tests read -----------------------------------------------------------------

    @property
    def token_requests(self) -> list[str]:
        """The ``grant_type`` of every ``POST /oauth/token`` so far, in order."""
        with self._lock:
            return list(self._token_requests)

    @property
    def exchange_requests(self) -> list[dict[str, str]]:
        """The parameters of every token-exchange request so far, in order (``subject_token``
        included: compare them, do not print them)."""
        with self._lock:
            return [dict(params) for params in self._exchange_requests]

    @property
    def exchange_count(self) -> int:
        """How many token-exchange requests reached ``/oauth/token`` (failed ones included)."""
        with self._lock:
            return len(self._exchange_requests)

    @property
    def github_requests(self) -> list[dict[str, str]]:
        """The query parameters (``audience``...) of every request to the GitHub stand-in."""
        with self._lock:
            return [dict(query) for query in self._github_requests]

    def fail_next_exchange(self, status: int, body: Mapping[str, Any] | bytes) -> None:
        """Answer the next token-exchange request with ``status`` and ``body`` (a JSON object,
        or raw bytes) instead of processing it; queued, first in first out."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._exchange_faults.append((status, raw))

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
        _check_count(count)
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

    # -- device login: test controls -----------------------------------------------------

    @property
    def pending_user_codes(self) -> list[str]:
        """User codes of device logins still waiting for a decision, oldest first."""
        now = time.monotonic()
        with self._lock:
            return [
                grant.user_code
                for grant in self._device_grants.values()
                if grant.state == "pending" and grant.expires_at > now
            ]

    def approve(self, user_code: str, user: FakeUser | None = None, **user_fields: Any) -> None:
        """Approve the device login ``user_code`` as ``user`` (or a user built from fields).

        The token issued is an OAuth token: whoami shows ``auth.type`` "oauth" and no
        ``accessToken`` (hence no display name), as on the Hub. Without a user or fields the
        user is ``browser_user``.
        """
        if user is not None and user_fields:
            raise TypeError("pass either a FakeUser or FakeUser fields, not both")
        if user is None:
            user = self._browser_user() if not user_fields else FakeUser(**user_fields)
        self._decide(user_code, "approved", user)

    def deny(self, user_code: str) -> None:
        """Deny the device login ``user_code``: its next poll answers ``access_denied``."""
        self._decide(user_code, "denied", None)

    def expire(self, user_code: str) -> None:
        """Expire the device login ``user_code`` now: its next poll answers ``expired_token``."""
        self._decide(user_code, "expired", None)

    def slow_down_next(self, count: int = 1) -> None:
        """Answer the next ``count`` device-code polls with ``slow_down``."""
        _check_count(count)
        with self._lock:
            self._slow_downs += count

    def fail_next_poll(self, status: int = 503, count: int = 1) -> None:
        """Answer the next ``count`` device-code polls with ``status`` and an HTML body."""
        _check_count(count)
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an error status (400-599), not {status}")
        with self._lock:
            self._poll_failures.append([status, count])

    def echo_device_code_next(self, error: str = "invalid_request", count: int = 1) -> None:
        """Answer the next ``count`` device-code polls with a 400 OAuth ``error`` whose
        ``error_description`` quotes the device code (a careless or hostile Hub)."""
        _check_count(count)
        with self._lock:
            self._echoes.extend([error] * count)

    def _browser_user(self) -> FakeUser:
        return self.browser_user or FakeUser(name="browser-user")

    def _decide(self, user_code: str, state: _DeviceState, user: FakeUser | None) -> None:
        code = normalize_user_code(user_code)
        with self._lock:
            grant = self._device_grants.get(self._user_codes.get(code, ""))
            if grant is None:
                raise KeyError(f"unknown user code {user_code!r}")
            if grant.state == "used":
                raise ValueError(f"the device login {code} has already been completed")
            if state == "approved" and user is not None:
                user = replace(user, token_name=None, auth_type="oauth")
            grant.state = state
            grant.user = user

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
        device_code = params.get("device_code", "")
        with self._lock:
            if self._poll_failures:
                failure = self._poll_failures[0]
                status = failure[0]
                failure[1] -= 1
                if failure[1] <= 0:
                    self._poll_failures.pop(0)
                return web.Response(
                    status=status,
                    text=f"<html><body>{status} {reason(status)}</body></html>",
                    content_type="text/html",
                )
            if self._echoes:
                error = self._echoes.pop(0)
                return oauth_error(400, error, f"cannot accept the device code {device_code}")
            grant = self._device_grants.get(device_code)
            if grant is None or params.get("client_id") != grant.client_id:
                return oauth_error(400, "invalid_grant", "unknown device code")
            if grant.state == "used":
                return oauth_error(400, "invalid_grant", "the device code was already used")
            if grant.state == "expired" or (
                grant.state != "approved" and grant.expires_at <= time.monotonic()
            ):
                grant.state = "expired"
                return oauth_error(400, "expired_token", "Device code expired")
            if grant.state == "denied":
                return oauth_error(400, "access_denied", "Device code denied")
            if self._slow_downs:
                self._slow_downs -= 1
                return oauth_error(400, "slow_down", "Polling too fast")
            if grant.state == "pending" or grant.user is None:
                return oauth_error(400, "authorization_pending", "Waiting for the user")
            grant.state = "used"
            user = grant.user
        return json_response(self.issue_login(user))

    # -- POST /oauth/device, GET /oauth/device, POST /oauth/device/confirm ----------------

    async def _device_authorization(self, request: web.Request) -> web.StreamResponse:
        params = await _read_params(request)
        client_id = (params or {}).get("client_id", "")
        if not client_id:
            return oauth_error(400, "invalid_request", "client_id is required")
        device_code = self._new_device_code()
        with self._lock:
            user_code = _new_user_code(self._user_codes)
            self._device_grants[device_code] = _DeviceGrant(
                device_code=device_code,
                user_code=user_code,
                client_id=client_id,
                expires_at=time.monotonic() + self.device_expires_in,
            )
            self._user_codes[user_code] = device_code
        verification_uri = f"{self._hub.url}/oauth/device"
        return json_response(
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
                "interval": self.device_interval,
                "expires_in": self.device_expires_in,
            }
        )

    def _new_device_code(self) -> str:
        """A new device code (tests' secret guard watches this method)."""
        return random_secret("", 40)

    async def _device_page(self, request: web.Request) -> web.StreamResponse:
        user_code = request.query.get("user_code", "")
        return html_page(
            "Connect a device",
            f"<p>Signed in as <b>{html.escape(self._browser_user().name)}</b>.</p>"
            '<form method="post" action="/oauth/device/confirm">'
            '<label for="user_code">Enter the code shown on your device</label> '
            f'<input id="user_code" name="user_code" value="{html.escape(user_code)}" '
            'autocomplete="off" required> '
            '<button id="approve" name="action" value="approve" type="submit">Approve</button> '
            '<button id="deny" name="action" value="deny" type="submit">Deny</button>'
            "</form>",
        )

    async def _device_confirm(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user_code = str(form.get("user_code", ""))
        action = form.get("action")
        if action not in ("approve", "deny"):
            return html_page("Connect a device", "<p>Choose Approve or Deny.</p>", status=400)
        code = normalize_user_code(user_code)
        with self._lock:
            grant = self._device_grants.get(self._user_codes.get(code, ""))
            usable = (
                grant is not None
                and grant.state == "pending"
                and grant.expires_at > time.monotonic()
            )
        if not usable:
            return html_page(
                "Connect a device",
                f'<p id="result">The code {html.escape(user_code)} is unknown, expired or '
                "already used. Start the login again on your device.</p>",
                status=400,
            )
        if action == "approve":
            self.approve(code)
            text = "Device connected. You can close this window and return to your device."
        else:
            self.deny(code)
            text = "Access denied. The device was not connected."
        return html_page("Connect a device", f'<p id="result">{text}</p>')

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
        answer = self.issue_login(user)
        if self._openid is not None:  # a "Sign in with HF" token keeps its consent's scopes
            self._openid.refreshed(presented, answer, user)
        return json_response(answer)

    # -- OIDC: id tokens, GitHub Actions' stand-in, the token exchange ----------------------

    def mint_id_token(
        self,
        *,
        resources: Sequence[str] = (),
        audience: str | None = None,
        lifetime: float = 300.0,
        user: FakeUser | None = None,
    ) -> str:
        """An OIDC id token, as a CI provider mints it, that the exchange accepts for
        ``resources`` (repos ``ns/name``, ``datasets/ns/name``... or bare usernames).

        ``audience`` is its ``aud`` (default: what the exchange accepts, ``oidc_audience`` or
        ``hub.url``); after ``lifetime`` seconds the exchange answers ``invalid_grant``.
        Exchanged tokens belong to ``user`` (default: a user named after the first resource's
        namespace); with a ``user`` and no ``resources`` any resource is accepted. The token
        looks like a JWT; FakeHub knows it from its own table and the client never looks
        inside.
        """
        if isinstance(resources, str):
            raise TypeError("resources must be a sequence of strings, not one string")
        if not resources and user is None:
            raise ValueError("give the resources the id token may be exchanged for, or a user")
        owner = user or FakeUser(name=_namespace(resources[0]), token_name=None)
        aud = audience if audience is not None else self._expected_audience()
        expires_at = time.time() + lifetime
        token = _jwt_looking({"iss": "fakehub-ci", "aud": aud, "exp": int(expires_at)})
        with self._lock:
            self._id_tokens[token] = _IdToken(
                audience=aud, expires_at=expires_at, resources=tuple(resources), user=owner
            )
        return token

    def github_actions(
        self,
        *,
        resources: Sequence[str] = (),
        user: FakeUser | None = None,
        lifetime: float = 300.0,
        id_token: str | None = None,
        status: int = 200,
    ) -> dict[str, str]:
        """Set up the GitHub Actions stand-in; return the variables a job with
        ``permissions: id-token: write`` sees (``GITHUB_ACTIONS``, ``ACTIONS_ID_TOKEN_...``).

        Each request gets a new id token for ``resources``/``user`` with the requested
        audience (as GitHub mints one per request), or always ``id_token`` when given.
        ``status`` other than 200 makes it refuse (e.g. 403, a job without the permission).
        """
        if id_token is None and not resources and user is None:
            raise ValueError("give resources, a user, or a fixed id_token")
        with self._lock:
            self._github = _GitHubStandIn(
                request_token=self._github.request_token,
                resources=tuple(resources),
                user=user,
                lifetime=lifetime,
                id_token=id_token,
                status=status,
            )
        # Like GitHub's, the URL already has a query string: the audience is appended.
        url = f"{self._hub.url}{GITHUB_ID_TOKEN_PATH}?api-version=2.0"
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self._github.request_token,
        }

    @property
    def github_request_token(self) -> str:
        """The bearer token the GitHub stand-in expects (``ACTIONS_ID_TOKEN_REQUEST_TOKEN``)."""
        return self._github.request_token

    def _expected_audience(self) -> str:
        return self.oidc_audience if self.oidc_audience is not None else self._hub.url

    async def _github_id_token(self, request: web.Request) -> web.StreamResponse:
        audience = request.query.get("audience", "")
        with self._lock:
            self._github_requests.append(dict(request.query))
            stand_in = self._github
        expected = f"Bearer {stand_in.request_token}"
        if not secrets.compare_digest(request.headers.get("Authorization", ""), expected):
            return json_response({"message": "Bad credentials"}, status=401)
        if stand_in.status != 200:
            return json_response(
                {"message": "Resource not accessible by integration"}, status=stand_in.status
            )
        if stand_in.id_token is not None:
            return json_response({"count": 1, "value": stand_in.id_token})
        if not audience:
            return json_response({"message": "audience is required"}, status=400)
        token = self.mint_id_token(
            resources=stand_in.resources,
            audience=audience,
            lifetime=stand_in.lifetime,
            user=stand_in.user,
        )
        return json_response({"count": 1, "value": token})

    async def _token_exchange_grant(self, params: Mapping[str, str]) -> web.StreamResponse:
        with self._lock:
            self._exchange_requests.append(dict(params))
            fault = self._exchange_faults.pop(0) if self._exchange_faults else None
        if fault is not None:
            return web.Response(status=fault[0], body=fault[1], headers={"Content-Type": JSON_TYPE})
        subject_token = params.get("subject_token", "")
        resource = params.get("resource", "")
        if params.get("subject_token_type") != ID_TOKEN_TYPE:
            return oauth_error(
                400, "invalid_request", f"subject_token_type must be {ID_TOKEN_TYPE}"
            )
        if not subject_token or not resource:
            return oauth_error(400, "invalid_request", "subject_token and resource are required")
        with self._lock:
            known = self._id_tokens.get(subject_token)
        if known is None:
            return oauth_error(400, "invalid_grant", "the id token is invalid")
        if time.time() >= known.expires_at:
            return oauth_error(400, "invalid_grant", "the id token has expired")
        if known.audience != self._expected_audience():
            return oauth_error(
                400,
                "invalid_grant",
                f"the id token's audience must be {self._expected_audience()}",
            )
        if known.resources and resource not in known.resources:
            return oauth_error(
                400, "invalid_grant", f"no trusted publisher of {resource} matches this id token"
            )
        prefix = "hf_jwt_" if "/" in resource else "hf_oauth_"
        token, lifetime = self.issue_access_token(
            known.user, lifetime=self.exchange_token_lifetime, prefix=prefix
        )
        return json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(lifetime),
                "issued_token_type": ACCESS_TOKEN_TYPE,
            }
        )

    # -- "Sign in with Hugging Face" (web apps): hub_auth/testing/_openid.py ---------------
    # The provider imports joserfc (a test/fastapi extra) when it is created: on first use.

    @property
    def openid(self) -> FakeOpenIDProvider:
        """The OpenID provider side (discovery, consent page, code grant, userinfo, JWKS)."""
        with self._lock:
            if self._openid is None:
                self._openid = FakeOpenIDProvider(self, self._hub)
            return self._openid

    def register_app(self, client_id: str | None = None, **fields: Any) -> OAuthApp:
        """Register an OAuth app (``FakeOpenIDProvider.register_app``)."""
        return self.openid.register_app(client_id, **fields)


@dataclass(frozen=True)
class _IdToken:
    """What FakeHub knows about an id token it minted."""

    audience: str
    expires_at: float
    resources: tuple[str, ...]
    user: FakeUser


@dataclass(frozen=True)
class _GitHubStandIn:
    """What the GitHub Actions stand-in answers."""

    request_token: str
    resources: tuple[str, ...] = ()
    user: FakeUser | None = None
    lifetime: float = 300.0
    id_token: str | None = None
    status: int = 200


def _check_count(count: int) -> None:
    if count < 1:
        raise ValueError(f"count must be >= 1, not {count}")


def _namespace(resource: str) -> str:
    """The owner in ``ns/name``, ``datasets/ns/name``, ... or a bare ``username``."""
    parts = resource.split("/")
    if len(parts) >= 3:
        return parts[1]
    return parts[0]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_looking(claims: Mapping[str, Any]) -> str:
    """``header.claims.signature`` in base64url: shaped like a CI provider's JWT, unsigned
    (a random tail; FakeHub recognises its id tokens by value, not by signature)."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = dict(claims, jti=secrets.token_hex(8))
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    return f"{header}.{body}.{secrets.token_urlsafe(32)}"


_DeviceState = Literal["pending", "approved", "denied", "expired", "used"]
# Upper-case letters and digits without look-alikes (0/O, 1/I), read aloud or typed easily.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class _DeviceGrant:
    device_code: str = field(repr=False)
    user_code: str
    client_id: str
    expires_at: float  # time.monotonic()
    state: _DeviceState = "pending"
    user: FakeUser | None = None


def normalize_user_code(text: str) -> str:
    """``52at flyz``, ``52AT-FLYZ`` and ``52atflyz`` are the same user code: ``52AT-FLYZ``."""
    letters = "".join(ch for ch in text.upper() if ch.isalnum())
    return f"{letters[:4]}-{letters[4:]}" if len(letters) == 8 else text.strip().upper()


def _new_user_code(taken: Mapping[str, str]) -> str:
    while True:
        letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        code = f"{letters[:4]}-{letters[4:]}"
        if code not in taken:
            return code


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
