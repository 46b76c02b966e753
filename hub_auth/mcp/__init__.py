"""MCP servers that know their callers from Hugging Face tokens (the official ``mcp`` SDK).

Install with ``pip install 'hub_auth[mcp]'``. ``HubTokenVerifier`` is the SDK's
``TokenVerifier``: every Hub token kind (``hf_...`` personal and fine-grained tokens, OAuth
``hf_oauth_...`` tokens) is checked with ``HubAuth.whoami``, so a token costs one Hub request
per cache lifetime, not one per tool call::

    from mcp.server.mcpserver import MCPServer

    from hub_auth.mcp import HubTokenVerifier, auth_settings, current_user

    verifier = HubTokenVerifier(require_orgs=["my-org"])
    mcp = MCPServer(
        "hub-tools",
        token_verifier=verifier,
        auth=auth_settings("https://tools.example.com/mcp"),
    )

    @mcp.tool()
    async def whoami() -> str:
        user = await current_user()
        return f"you are {user.username}" if user else "anonymous"

    app = verifier.wrap(mcp.streamable_http_app())  # serve with uvicorn

What a caller gets:

- no token: 401 with ``WWW-Authenticate: Bearer ... resource_metadata="..."`` (the SDK);
- a token the Hub rejects (invalid, expired, revoked): 401 ``invalid_token`` (the SDK);
- a token refused by the Hub's policy or by ``require_orgs``/``require_role``/
  ``require_permissions``: 403 (``verifier.wrap``; without it the SDK can only say 401);
- a token that could not be checked (Hub down, rate limited, timeout): 503 with
  ``Retry-After`` and a JSON body (``verifier.wrap``), never a 401, which would send the MCP
  client into a new sign-in. Without the wrapper, ``verify_token`` raises
  ``TokenCheckUnavailable`` (a 500);
- a missing ``AuthSettings.required_scopes`` scope: 403 ``insufficient_scope`` (the SDK).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from pydantic import Field
from typing_extensions import Unpack

from hub_auth._client import HubAuth
from hub_auth._models import UserInfo
from hub_auth._rules import DEFAULT_RETRY_AFTER, AccessRuleOptions
from hub_auth._settings import Settings
from hub_auth.mcp._check import ASGIApp, Gate, TokenCheck, access_token_fields, pre_checked

__all__ = [
    "HubAccessToken",
    "HubTokenVerifier",
    "TokenCheckUnavailable",
    "auth_settings",
    "current_user",
]


class HubAccessToken(AccessToken):
    """The SDK's ``AccessToken`` for a Hub token, with the caller's full ``UserInfo``.

    ``subject`` and ``client_id`` are the account id; ``scopes`` the token's role (with the
    roles it implies: ``write`` also has ``read``), its fine-grained global permissions and
    the OAuth scopes the Hub reports; ``claims`` hold ``iss`` (the Hub), ``sub``,
    ``preferred_username``, ``name``, ``picture``, ``email`` (when the Hub sends it), ``orgs``
    (names), ``token_kind`` (whoami's ``auth.type``), ``role`` and ``is_pro``; ``expires_at``
    and ``resource`` come from the Hub when it reports them. The token stays out of ``repr``.
    """

    token: str = Field(repr=False)
    user: UserInfo = Field(exclude=True, repr=False)
    """The caller, as whoami reports them (what :func:`current_user` returns)."""


class TokenCheckUnavailable(RuntimeError):
    """The token could not be checked (Hub down, rate limited, timeout): not a bad token.

    Raised by ``HubTokenVerifier.verify_token`` only when the app is not wrapped with
    ``verifier.wrap(app)``, which answers 503 with ``Retry-After`` instead.
    """

    def __init__(self, detail: str, retry_after: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        """Seconds to wait before trying again, as the ``Retry-After`` value."""


class HubTokenVerifier:
    """The SDK's ``TokenVerifier`` for Hugging Face tokens (see the module docstring).

    Args:
        auth: The ``HubAuth`` that checks tokens; give it a cache (``MemoryCache``, or
            ``RedisCache`` for several replicas). By default the verifier creates
            ``HubAuth(cache=MemoryCache())`` (endpoint from ``HF_ENDPOINT``) and closes it
            when the wrapped app shuts down; a ``HubAuth`` you pass is never closed by it.
        require_orgs: Organisations the caller must belong to: at least one of them, or all
            with ``require_all_orgs=True``.
        require_all_orgs: See ``require_orgs``.
        require_role: The weakest classic token role accepted (``read`` < ``write`` <
            ``admin``); fine-grained and OAuth tokens have none and are refused.
        require_permissions: Fine-grained permissions the token must grant, on the
            organisation of ``require_orgs``, ``permission_entity`` or the caller's account
            (the rules of ``hub_auth.fastapi.HubBearer``).
        permission_entity: The user or organisation the permissions must hold on.
        resource_server_url: This server's URL: a token the Hub bound to another resource
            (RFC 8707) is refused. Hub tokens are bound to none unless the Hub says so.
        retry_after_default: Seconds in a 503's ``Retry-After`` when the Hub gave no wait.
    """

    def __init__(
        self,
        auth: HubAuth | None = None,
        *,
        resource_server_url: str | None = None,
        retry_after_default: float = DEFAULT_RETRY_AFTER,
        **rules: Unpack[AccessRuleOptions],
    ) -> None:
        self._check = TokenCheck(
            auth,
            rules,
            retry_after_default=retry_after_default,
            resource_server_url=resource_server_url,
            adapter="HubTokenVerifier",
        )

    def __repr__(self) -> str:
        rules = self._check.rules
        options = [
            f"{name}={value!r}"
            for name, value in (
                ("require_orgs", list(rules.require_orgs)),
                ("require_all_orgs", rules.require_all_orgs),
                ("require_role", rules.require_role),
                ("require_permissions", list(rules.require_permissions)),
                ("permission_entity", rules.permission_entity),
            )
            if value
        ]
        return f"HubTokenVerifier({', '.join(options)})"

    @property
    def auth(self) -> HubAuth:
        """The ``HubAuth`` that checks tokens (its ``endpoint`` is the authorization server)."""
        return self._check.auth

    async def verify_token(self, token: str) -> HubAccessToken | None:
        """The ``HubAccessToken`` for a token the Hub accepts and the rules admit, else ``None``.

        Raises ``TokenCheckUnavailable`` when the token could not be checked and the app is
        not wrapped with :meth:`wrap` (which answers 503 before the SDK asks).
        """
        checked = pre_checked(token) or await self._check.check(token)
        if checked.user is not None:
            fields = access_token_fields(token, checked.user, self.auth.endpoint)
            # Our own typed fields: no validation needed (a few microseconds per request).
            return HubAccessToken.model_construct(**fields)
        if checked.status == 503:
            raise TokenCheckUnavailable(
                f"{checked.detail}; wrap the app with HubTokenVerifier.wrap() to answer 503",
                checked.retry_after or "",
            )
        return None

    def wrap(
        self, app: ASGIApp, *, on_shutdown: Callable[[], Awaitable[None]] | None = None
    ) -> ASGIApp:
        """Wrap the server's ASGI app (``mcp.streamable_http_app()``).

        A token that could not be checked gets 503 with ``Retry-After``, one refused by the
        Hub's policy or by a rule 403; everything else passes through unchanged. When the app
        shuts down, in the server's event loop, ``on_shutdown`` is awaited (close a
        ``HubAuth`` or Redis client of yours there) and the ``HubAuth`` the verifier created
        is closed.
        """
        return Gate(app, self._check, on_shutdown=on_shutdown)

    async def aclose(self) -> None:
        """Close the ``HubAuth`` the verifier created (one you passed is left open)."""
        await self._check.aclose()


def auth_settings(
    resource_server_url: str,
    *,
    required_scopes: Sequence[str] | None = None,
    auth: HubAuth | None = None,
    **options: Any,
) -> AuthSettings:
    """``AuthSettings`` naming the Hub as the authorization server of this MCP server.

    The issuer is ``auth.endpoint`` (by default ``HF_ENDPOINT`` or ``https://huggingface.co``),
    so ``/.well-known/oauth-protected-resource/...`` lists it and MCP clients sign people in
    there. ``validate_token_resource`` is false: Hub tokens are not bound to a resource (give
    ``HubTokenVerifier(resource_server_url=...)`` to refuse those the Hub binds elsewhere).
    ``options`` go to ``AuthSettings`` as they are (``service_documentation_url``, ...).
    """
    endpoint = auth.endpoint if auth is not None else Settings.resolve().endpoint
    return AuthSettings(
        issuer_url=endpoint,
        resource_server_url=resource_server_url,
        required_scopes=list(required_scopes) if required_scopes is not None else None,
        validate_token_resource=False,
        **options,
    )


async def current_user() -> UserInfo | None:
    """The caller's ``UserInfo`` inside a tool (``None`` without a Hub-checked caller).

    It comes with the request's access token: no cache lookup, no Hub request.
    """
    access = get_access_token()
    return access.user if isinstance(access, HubAccessToken) else None
