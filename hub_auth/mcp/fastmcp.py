"""FastMCP 4.x servers that know their callers from Hugging Face tokens.

Install with ``pip install 'hub_auth[fastmcp]'``. The same checks as ``hub_auth.mcp`` (one
Hub request per token and cache lifetime, organisation/role/permission rules, 503 with
``Retry-After`` when the Hub cannot answer), as a FastMCP auth provider that lists the Hub
as the authorization server::

    from fastmcp import FastMCP

    from hub_auth.mcp.fastmcp import HubTokenVerifier, current_user

    mcp = FastMCP("hub-tools", auth=HubTokenVerifier(base_url="https://tools.example.com"))

    @mcp.tool()
    async def whoami() -> str:
        user = await current_user()
        return f"you are {user.username}" if user else "anonymous"

    app = mcp.http_app(path="/mcp")  # serve with uvicorn; no wrapper needed

The provider puts its own gate in front of FastMCP's bearer middleware
(``get_middleware``), so a token that could not be checked is a 503 and one refused by a
rule a 403 without wrapping the app. Used alone (say inside ``MultiAuth``), its
``token_verifier`` raises FastMCP's ``TokenVerificationError`` for "could not check".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from fastmcp.server.auth import RemoteAuthProvider, TokenVerificationError, TokenVerifier
from fastmcp.server.auth.auth import AccessToken
from fastmcp.server.dependencies import get_access_token
from pydantic import AnyHttpUrl, Field
from starlette.middleware import Middleware
from typing_extensions import Unpack

from hub_auth._client import HubAuth
from hub_auth._models import UserInfo
from hub_auth._rules import DEFAULT_RETRY_AFTER, AccessRuleOptions
from hub_auth.mcp._check import Gate, TokenCheck, access_token_fields, pre_checked

__all__ = ["HubAccessToken", "HubTokenVerifier", "current_user"]


class HubAccessToken(AccessToken):
    """FastMCP's ``AccessToken`` for a Hub token, with the caller's full ``UserInfo``
    (fields as ``hub_auth.mcp.HubAccessToken``); the token stays out of ``repr``."""

    token: str = Field(repr=False)
    user: UserInfo = Field(exclude=True, repr=False)
    """The caller, as whoami reports them (what :func:`current_user` returns)."""


class _HubTokenCheck(TokenVerifier):
    """The FastMCP ``TokenVerifier`` half: one token in, a ``HubAccessToken`` or ``None``."""

    def __init__(self, check: TokenCheck, required_scopes: list[str] | None) -> None:
        super().__init__(required_scopes=required_scopes)
        self.check = check

    async def verify_token(self, token: str) -> AccessToken | None:
        checked = pre_checked(token) or await self.check.check(token)
        if checked.user is not None:
            endpoint = self.check.auth.endpoint
            fields = access_token_fields(token, checked.user, endpoint)
            return HubAccessToken.model_construct(**fields)  # our own typed fields
        if checked.status == 503:
            raise TokenVerificationError(checked.detail)
        return None


class HubTokenVerifier(RemoteAuthProvider):
    """A FastMCP auth provider for Hugging Face tokens, naming the Hub as the authorization
    server in this server's protected resource metadata.

    Args:
        auth: The ``HubAuth`` that checks tokens (give it a cache). By default the provider
            creates ``HubAuth(cache=MemoryCache())`` (endpoint from ``HF_ENDPOINT``) and
            closes it when the app shuts down; one you pass is never closed by it.
        base_url: This server's public URL (the resource metadata is derived from it).
        require_orgs: Organisations the caller must belong to (one of them, or all with
            ``require_all_orgs=True``).
        require_all_orgs: See ``require_orgs``.
        require_role: The weakest classic token role accepted (``read`` < ``write`` <
            ``admin``).
        require_permissions: Fine-grained permissions the token must grant (the rules of
            ``hub_auth.fastapi.HubBearer``).
        permission_entity: The user or organisation the permissions must hold on.
        required_scopes: Scopes every request needs (403 ``insufficient_scope`` otherwise);
            see ``hub_auth.mcp.HubAccessToken`` for the scopes a Hub token has.
        resource_base_url: The public URL of the resource, when it differs from ``base_url``.
        retry_after_default: Seconds in a 503's ``Retry-After`` when the Hub gave no wait.
        on_shutdown: Awaited when the app shuts down, in the server's event loop (close a
            ``HubAuth`` or Redis client of yours there).
    """

    def __init__(
        self,
        auth: HubAuth | None = None,
        *,
        base_url: AnyHttpUrl | str,
        required_scopes: Sequence[str] | None = None,
        resource_base_url: AnyHttpUrl | str | None = None,
        retry_after_default: float = DEFAULT_RETRY_AFTER,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        **rules: Unpack[AccessRuleOptions],
    ) -> None:
        self._on_shutdown = on_shutdown
        self._check = TokenCheck(
            auth,
            rules,
            retry_after_default=retry_after_default,
            resource_server_url=None,
            adapter="hub_auth.mcp.fastmcp.HubTokenVerifier",
        )
        scopes = list(required_scopes) if required_scopes is not None else None
        super().__init__(
            token_verifier=_HubTokenCheck(self._check, scopes),
            # The endpoint as a string: the metadata model keeps its spelling, where AnyHttpUrl
            # would add a "/" (RFC 8414 issuers compare as strings).
            authorization_servers=[cast(AnyHttpUrl, self._check.auth.endpoint)],
            base_url=base_url,
            resource_base_url=resource_base_url,
        )

    @property
    def auth(self) -> HubAuth:
        """The ``HubAuth`` that checks tokens (its ``endpoint`` is the authorization server)."""
        return self._check.auth

    def set_mcp_path(self, mcp_path: str | None) -> None:
        """FastMCP's hook once the MCP path is known: a token the Hub bound to another
        resource than this server's is refused from then on."""
        super().set_mcp_path(mcp_path)
        if self._resource_url is not None:
            self._check.bind_resource(str(self._resource_url))

    def get_middleware(self) -> list[Any]:
        """FastMCP's bearer middleware, behind the gate that answers 403 and 503."""
        return [
            Middleware(Gate, check=self._check, on_shutdown=self._on_shutdown),
            *super().get_middleware(),
        ]

    async def aclose(self) -> None:
        """Close the ``HubAuth`` the provider created (one you passed is left open)."""
        await self._check.aclose()


async def current_user() -> UserInfo | None:
    """The caller's ``UserInfo`` inside a FastMCP tool (``None`` without a Hub-checked
    caller); it comes with the request's access token, no Hub request."""
    access = get_access_token()
    return access.user if isinstance(access, HubAccessToken) else None
