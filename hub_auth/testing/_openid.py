"""FakeHub as an OpenID provider: "Sign in with Hugging Face" for web apps, on loopback.

``FakeOAuth`` (``hub.oauth``) owns one ``FakeOpenIDProvider`` (``hub.oauth.openid``) and routes
to it:

- ``GET /.well-known/openid-configuration``: discovery; the issuer is the hub's own URL;
- ``GET /.well-known/oauth-authorization-server``: the same server as RFC 8414 metadata
  (what MCP clients look up: endpoints, grants, ``code_challenge_methods_supported: S256``);
- ``GET /oauth/authorize``: checks the request and shows a real HTML consent page (the app's
  name, the scopes, Approve and Deny buttons); ``POST /oauth/authorize`` is that form's answer
  and redirects back to the app with ``code`` and ``state``, or ``error=access_denied``;
- ``POST /oauth/token`` with ``grant_type=authorization_code``: client authentication (HTTP
  Basic or ``client_secret`` in the form for confidential apps, ``client_id`` alone for public
  ones), the PKCE S256 check, single-use codes bound to the redirect URI; the refresh grant of
  ``FakeOAuth`` serves the refresh tokens handed out here;
- ``GET /oauth/userinfo`` (Bearer) and ``GET /oauth/jwks`` (the public half of an RSA key
  generated per hub); id_tokens are RS256 JWTs signed with joserfc.

Test controls: :meth:`FakeOpenIDProvider.register_app` (also ``hub.oauth.register_app``),
``hub.oauth.browser_user`` (who is signed in at the fake Hub when the consent page shows, as
for the device login page), ``code_lifetime``, ``id_token_lifetime`` and
:meth:`corrupt_next_id_token` (attack tests). Facts: ``shared/reference/OAUTH_FACTS.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import ipaddress
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from hub_auth.testing._pages import html_page, json_response, oauth_error
from hub_auth.testing._users import FakeUser, TokenTable, random_secret

__all__ = [
    "AUTHORIZATION_CODE_GRANT",
    "SCOPES",
    "FakeOpenIDProvider",
    "OAuthApp",
    "TokenIssuer",
    "add_openid_routes",
]

AUTHORIZATION_CODE_GRANT = "authorization_code"

SCOPES = (
    "openid",
    "profile",
    "email",
    "read-billing",
    "read-memberships",
    "read-repos",
    "gated-repos",
    "contribute-repos",
    "write-repos",
    "manage-repos",
    "read-collections",
    "write-collections",
    "inference-api",
    "read-endpoints",
    "write-endpoints",
    "jobs",
    "webhooks",
    "write-discussions",
)
"""The scopes the Hub knows (OAUTH_FACTS.md)."""

Corruption = Literal["signature", "expired", "audience", "issuer", "nonce"]
_CORRUPTIONS: tuple[str, ...] = ("signature", "expired", "audience", "issuer", "nonce")
_LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class OAuthApp:
    """An OAuth app registered with the fake Hub (what a Space with ``hf_oauth: true`` gets)."""

    client_id: str
    name: str
    client_secret: str | None
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]

    def __repr__(self) -> str:  # the secret stays out of test output
        secret = "set" if self.client_secret else "none"
        return f"OAuthApp(client_id={self.client_id!r}, name={self.name!r}, secret={secret})"


class TokenIssuer(Protocol):
    """What the provider needs from ``FakeOAuth``: who is signed in, and tokens to hand out.

    ``FakeOAuth`` satisfies it; it sits above this module and creates the provider.
    """

    def issue_access_token(
        self, user: FakeUser, *, lifetime: float | None = None, prefix: str = "hf_oauth_"
    ) -> tuple[str, float]: ...

    def mint_refresh_token(self, user: FakeUser) -> str: ...

    def _browser_user(self) -> FakeUser:
        """Who is signed in at the fake Hub (``hub.oauth.browser_user`` or a default)."""


@dataclass(frozen=True)
class _Consent:
    """An authorization request the signed-in user approves or denies."""

    app: OAuthApp
    user: FakeUser
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None


@dataclass(frozen=True)
class _Code:
    """An authorization code: the approved request, until ``expires_at``."""

    consent: _Consent
    expires_at: float


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP address (``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact match, except that an ``http`` loopback redirect URI may use any port."""
    if registered == presented:
        return True
    want, got = urlsplit(registered), urlsplit(presented)
    if want.scheme != "http" or got.scheme != "http" or not is_loopback_host(want.hostname):
        return False
    return (want.hostname, want.path, want.query) == (got.hostname, got.path, got.query)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class FakeOpenIDProvider:
    """The "Sign in with Hugging Face" side of one ``FakeHub`` and its test controls."""

    def __init__(self, oauth: TokenIssuer, hub: TokenTable) -> None:
        from joserfc.jwk import RSAKey  # joserfc: a test/fastapi extra

        self._oauth = oauth
        self._hub = hub
        self._lock = threading.Lock()
        self._apps: dict[str, OAuthApp] = {}
        self._pending: dict[str, _Consent] = {}
        self._codes: dict[str, _Code] = {}
        self._issued: dict[str, tuple[FakeUser, tuple[str, ...]]] = {}
        self._refresh_scopes: dict[str, tuple[str, ...]] = {}  # a refresh keeps the consent's
        self._corruptions: list[str] = []
        self._kid = secrets.token_hex(8)
        self._key = RSAKey.generate_key(
            2048, parameters={"kid": self._kid, "use": "sig", "alg": "RS256"}, private=True
        )
        self.code_lifetime: float = 60.0
        """Seconds an authorization code can be exchanged."""
        self.id_token_lifetime: float = 3600.0
        """Seconds an id_token is valid (its ``exp``)."""
        self.authorize_requests = 0
        """``GET /oauth/authorize`` requests received (valid or not)."""
        self.discovery_requests = 0
        """``GET /.well-known/openid-configuration`` requests received."""
        self.userinfo_requests = 0
        """``GET /oauth/userinfo`` requests received (valid or not)."""

    # -- test controls ---------------------------------------------------------------------

    def register_app(
        self,
        client_id: str | None = None,
        *,
        name: str = "Fake OAuth app",
        client_secret: str | None = None,
        scopes: Sequence[str] = ("openid", "profile"),
        redirect_uris: Sequence[str] = ("http://127.0.0.1/oauth/huggingface/callback",),
    ) -> OAuthApp:
        """Register an OAuth app; ``client_secret=None`` makes it public (PKCE only).

        ``scopes`` are those the app may ask for (``openid`` and ``profile`` always are).

        ``redirect_uris`` are matched exactly, except ``http`` loopback ones on any port (the
        default accepts ``http://127.0.0.1:ANY/oauth/huggingface/callback``).
        """
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; the Hub knows {list(SCOPES)}")
        app = OAuthApp(
            client_id=client_id or secrets.token_hex(12),
            name=name,
            client_secret=client_secret,
            scopes=tuple(dict.fromkeys(("openid", "profile", *scopes))),
            redirect_uris=tuple(redirect_uris),
        )
        with self._lock:
            self._apps[app.client_id] = app
        return app

    def corrupt_next_id_token(self, how: Corruption) -> None:
        """Spoil the next id_token: a bad ``signature``, already ``expired``, another
        ``audience``, another ``issuer`` or another ``nonce``."""
        if how not in _CORRUPTIONS:
            raise ValueError(f"how must be one of {_CORRUPTIONS}, not {how!r}")
        with self._lock:
            self._corruptions.append(how)

    @property
    def issuer(self) -> str:
        return self._hub.url

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    # -- routes (registered by add_openid_routes) ------------------------------------------

    def _server_metadata(self) -> dict[str, Any]:
        """What RFC 8414 and OpenID discovery both say about the authorization server."""
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "scopes_supported": list(SCOPES),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
        }

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.discovery_requests += 1
        base = self.issuer
        return json_response(
            {
                **self._server_metadata(),
                "userinfo_endpoint": f"{base}/oauth/userinfo",
                "jwks_uri": f"{base}/oauth/jwks",
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _authorization_server_metadata(self, request: web.Request) -> web.StreamResponse:
        """RFC 8414 metadata, where MCP clients look for the authorization server first.

        No registration endpoint and no client ID metadata documents: clients are
        registered by the test (``register_app``), as OAuth apps are on the Hub.
        """
        return json_response(self._server_metadata())

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.public_jwks())

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.authorize_requests += 1
        query = request.query
        client_id = query.get("client_id", "")
        with self._lock:
            app = self._apps.get(client_id)
        user = self._oauth._browser_user()  # hub.oauth.browser_user, as on the device page
        if app is None:
            return _error_page("Unknown app", f"No OAuth app has the client id {client_id!r}.")
        redirect_uri = query.get("redirect_uri", "")
        if not any(redirect_uri_matches(uri, redirect_uri) for uri in app.redirect_uris):
            # Never redirect to an unregistered URI: that is how codes get stolen.
            return _error_page("Invalid redirect_uri", "This redirect URI is not registered.")
        state = query.get("state")

        def back(error: str, description: str) -> web.StreamResponse:
            return _redirect(redirect_uri, error=error, error_description=description, state=state)

        if query.get("response_type") != "code":
            return back("unsupported_response_type", "response_type must be code")
        scopes = tuple(dict.fromkeys(query.get("scope", "").split()))
        if "openid" not in scopes:
            return back("invalid_scope", "the openid scope is required")
        if set(scopes) - set(app.scopes):
            return back("invalid_scope", "the app may not ask for these scopes")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method", "plain" if challenge else None)
        if challenge is not None and method != "S256":
            return back("invalid_request", "code_challenge_method must be S256")
        if challenge is None and app.client_secret is None:
            return back("invalid_request", "a public app must use PKCE (code_challenge)")
        org_id = query.get("orgIds")
        if org_id is not None and org_id not in {org["id"] for org in user.body()["orgs"]}:
            return back("access_denied", "you are not a member of the required organization")
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[request_id] = _Consent(
                app, user, redirect_uri, scopes, state, query.get("nonce"), challenge
            )
        return _consent_page(app, user, scopes, request_id)

    async def _consent(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        request_id = form.get("request_id")
        with self._lock:
            pending = self._pending.pop(request_id, None) if isinstance(request_id, str) else None
        if pending is None:
            return _error_page("Expired request", "This authorization request is no longer valid.")
        if form.get("decision") != "approve":
            return _redirect(
                pending.redirect_uri,
                error="access_denied",
                error_description="The user denied access",
                state=pending.state,
            )
        code = random_secret("fake_code_", 32)
        with self._lock:
            self._codes[code] = _Code(pending, time.time() + self.code_lifetime)
        return _redirect(pending.redirect_uri, code=code, state=pending.state)

    # -- POST /oauth/token, grant_type=authorization_code ----------------------------------

    def _client(
        self, params: Mapping[str, str], authorization: str | None
    ) -> OAuthApp | web.StreamResponse:
        """The app the request authenticates as, or the error to answer."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                return oauth_error(401, "invalid_client", "unsupported client authentication")
            try:
                client_id, sep, secret = (
                    base64.b64decode(value, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return oauth_error(401, "invalid_client", "malformed Basic credentials")
            if not sep:
                return oauth_error(401, "invalid_client", "malformed Basic credentials")
        with self._lock:
            app = self._apps.get(client_id or "")
        if app is None:
            return oauth_error(401, "invalid_client", "unknown client")
        if app.client_secret is not None and not hmac.compare_digest(
            (secret or "").encode(), app.client_secret.encode()
        ):
            return oauth_error(401, "invalid_client", "client authentication failed")
        return app

    async def authorization_code_grant(
        self, params: Mapping[str, str], *, authorization: str | None = None
    ) -> web.StreamResponse:
        client = self._client(params, authorization)
        if not isinstance(client, OAuthApp):
            return client
        with self._lock:
            code = self._codes.pop(params.get("code", ""), None)  # single use, even on failure
        if code is None or code.expires_at <= time.time():
            return oauth_error(400, "invalid_grant", "the code is invalid, expired or used")
        consent = code.consent
        if consent.app.client_id != client.client_id:
            return oauth_error(400, "invalid_grant", "the code was issued to another client")
        if params.get("redirect_uri") != consent.redirect_uri:
            return oauth_error(400, "invalid_grant", "redirect_uri does not match")
        if consent.code_challenge is not None:
            verifier = params.get("code_verifier", "")
            if not verifier or not hmac.compare_digest(
                pkce_challenge(verifier), consent.code_challenge
            ):
                return oauth_error(400, "invalid_grant", "PKCE verification failed")
        access_token, seconds = self._oauth.issue_access_token(consent.user)
        refresh_token = self._oauth.mint_refresh_token(consent.user)
        with self._lock:
            self._issued[access_token] = (consent.user, consent.scopes)
            self._refresh_scopes[refresh_token] = consent.scopes
        return json_response(
            {
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": int(seconds),
                "scope": " ".join(consent.scopes),
                "id_token": self._id_token(consent),
                "refresh_token": refresh_token,
            }
        )

    def refreshed(self, spent: str, answer: dict[str, Any], user: FakeUser) -> None:
        """A refresh of a signed-in app's token keeps the scopes the user consented to (the
        new access token's userinfo, the new refresh token's next refresh, ``scope``)."""
        with self._lock:
            scopes = self._refresh_scopes.pop(spent, None)
            if scopes is None:
                return
            self._issued[answer["access_token"]] = (user, scopes)
            self._refresh_scopes[answer["refresh_token"]] = scopes
        answer["scope"] = " ".join(scopes)

    def _id_token(self, consent: _Consent) -> str:
        from joserfc import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": consent.app.client_id,
            "sub": self.userinfo(consent.user, consent.scopes)["sub"],
            "iat": now,
            "auth_time": now,
            "exp": now + int(self.id_token_lifetime),
        }
        if consent.nonce is not None:
            claims["nonce"] = consent.nonce
        claims.update(self.userinfo(consent.user, consent.scopes))
        with self._lock:
            corruption = self._corruptions.pop(0) if self._corruptions else None
        if corruption == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif corruption == "audience":
            claims["aud"] = "someone-else"
        elif corruption == "issuer":
            claims["iss"] = "https://evil.example"
        elif corruption == "nonce":
            claims["nonce"] = "not-the-nonce"
        token: str = jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)
        if corruption == "signature":
            header, payload, signature = token.split(".")
            flipped = "A" if signature[0] != "A" else "B"
            token = f"{header}.{payload}.{flipped}{signature[1:]}"
        return token

    # -- GET /oauth/userinfo ---------------------------------------------------------------

    def userinfo(self, user: FakeUser, scopes: Sequence[str]) -> dict[str, Any]:
        """What ``/oauth/userinfo`` answers for ``user`` with a token of ``scopes``."""
        body = user.body()
        avatar = body["avatarUrl"]
        info: dict[str, Any] = {
            "sub": body["id"],
            "name": body["fullname"],
            "preferred_username": body["name"],
            "profile": f"{self.issuer}/{body['name']}",
            "picture": f"{self.issuer}{avatar}" if avatar.startswith("/") else avatar,
            "isPro": body["isPro"],
            "canPay": body["canPay"],
        }
        if "email" in scopes and body.get("email"):
            info["email"] = body["email"]
            info["email_verified"] = body.get("emailVerified", False)
        if "read-memberships" in scopes:
            info["orgs"] = [
                {
                    key: value
                    for key, value in {
                        "sub": org["id"],
                        "name": org["fullname"],
                        "preferred_username": org["name"],
                        "picture": org["avatarUrl"],
                        "canPay": org.get("canPay"),
                        "roleInOrg": org.get("roleInOrg"),
                        "plan": org.get("plan"),
                    }.items()
                    if value is not None
                }
                for org in body["orgs"]
            ]
        return info

    async def _userinfo(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.userinfo_requests += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            issued = self._issued.get(token) if scheme.lower() == "bearer" else None
        user = self._hub._unexpired_user(token)  # FakeHub's own token table
        if issued is None and user is not None:
            issued = (user, ("openid", "profile"))  # a refreshed token
        if issued is None or user is None:
            return oauth_error(401, "invalid_token", "the access token is invalid or expired")
        return json_response(self.userinfo(*issued))


def add_openid_routes(
    router: web.UrlDispatcher, provider: Callable[[], FakeOpenIDProvider]
) -> None:
    """Register the provider's routes; ``provider()`` creates it on first use (an RSA key)."""

    def route(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
            handler = getattr(provider(), name)
            return await handler(request)

        return handle

    router.add_get("/.well-known/openid-configuration", route("_discovery"))
    router.add_get(
        "/.well-known/oauth-authorization-server", route("_authorization_server_metadata")
    )
    router.add_get("/oauth/authorize", route("_authorize"))
    router.add_post("/oauth/authorize", route("_consent"))
    router.add_get("/oauth/userinfo", route("_userinfo"))
    router.add_get("/oauth/jwks", route("_jwks"))
    router.add_get("/avatars/{name}", _avatar)


async def _avatar(request: web.Request) -> web.StreamResponse:
    """A generated avatar (users' ``avatarUrl`` and ``picture`` point here)."""
    digest = hashlib.sha256(request.match_info["name"].encode()).hexdigest()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" fill="#{digest[:6]}"/>'
        f'<circle cx="32" cy="26" r="12" fill="#{digest[6:12]}"/>'
        f'<rect x="14" y="42" width="36" height="22" rx="11" fill="#{digest[6:12]}"/></svg>'
    )
    return web.Response(text=svg, content_type="image/svg+xml")


def _redirect(uri: str, **params: str | None) -> web.StreamResponse:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    separator = "&" if urlsplit(uri).query else "?"
    return web.Response(
        status=302, headers={"Location": f"{uri}{separator}{query}", "Cache-Control": "no-store"}
    )


def _error_page(title: str, message: str) -> web.Response:
    return html_page(title, f"<p>{html.escape(message)}</p>", status=400)


def _consent_page(
    app: OAuthApp, user: FakeUser, scopes: Sequence[str], request_id: str
) -> web.Response:
    items = "".join(f"<li><code>{html.escape(scope)}</code></li>" for scope in scopes)
    name = html.escape(app.name)
    body = f"""
<p>Signed in at the fake Hub as <strong id="hub-user">{html.escape(user.name)}</strong>.</p>
<p><strong>{name}</strong> wants to:</p>
<ul id="scopes">{items}</ul>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="request_id" value="{html.escape(request_id)}">
<button type="submit" name="decision" value="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
"""
    return html_page(
        f"Authorize {app.name}",
        body,
        heading=f'Authorize <span id="app-name">{name}</span>',
        style="body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
        "button{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}",
        # No form-action: browsers apply it to the redirect back to the app too.
        csp="default-src 'none'; style-src 'unsafe-inline'",
    )
