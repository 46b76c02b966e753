"""hub_auth.mcp's verifier on its own: the AccessToken it builds from whoami, its refusals,
"could not check", auth_settings and who owns the HubAuth."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastmcp.server.auth import TokenVerificationError
from mcp.server.mcpserver import MCPServer

from hub_auth import HubAuth, MemoryCache
from hub_auth.mcp import (
    HubAccessToken,
    HubTokenVerifier,
    TokenCheckUnavailable,
    auth_settings,
    current_user,
)
from hub_auth.mcp import fastmcp as hub_fastmcp
from hub_auth.testing import FakeHub, FakeUser
from tests.test_mcp import INITIALIZE, MCP_HEADERS, ServedApp

OAUTH_EXPIRY = "2031-01-02T03:04:05.000Z"


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with FakeHub() as fake:
        yield fake


@pytest.fixture
async def auth(hub: FakeHub) -> AsyncIterator[HubAuth]:
    async with HubAuth(endpoint=hub.url, cache=MemoryCache(), max_attempts=1) as client:
        yield client


async def test_a_write_token_maps_onto_the_access_token(hub: FakeHub, auth: HubAuth) -> None:
    user = FakeUser(name="ada", fullname="Ada Lovelace", email="ada@example.com", orgs=["poets"])
    token = hub.add_token(user=user)
    access = await HubTokenVerifier(auth).verify_token(token)
    assert isinstance(access, HubAccessToken)
    body = user.body()
    assert access.subject == access.client_id == body["id"]
    assert access.scopes == ["read", "write"]
    assert access.expires_at is None
    assert access.resource is None
    assert access.claims == {
        "iss": hub.url,
        "sub": body["id"],
        "preferred_username": "ada",
        "name": "Ada Lovelace",
        "picture": hub.url + body["avatarUrl"],
        "email": "ada@example.com",
        "orgs": ["poets"],
        "token_kind": "access_token",
        "role": "write",
        "is_pro": False,
    }
    assert access.user.username == "ada"
    assert token not in repr(access)
    assert "user" not in access.model_dump()


async def test_fine_grained_global_permissions_are_scopes(hub: FakeHub, auth: HubAuth) -> None:
    grants = {"global": ["discussion.write", "post.write"], "scoped": []}
    token = hub.add_token(name="charles", role="fineGrained", fine_grained=grants)
    access = await HubTokenVerifier(auth).verify_token(token)
    assert access is not None
    assert access.scopes == ["fineGrained", "discussion.write", "post.write"]


def _oauth_user(**auth_fields: Any) -> FakeUser:
    body = {"type": "oauth", "expiresAt": OAUTH_EXPIRY, **auth_fields}
    return FakeUser(name="grace", token_name=None, extra={"auth": body})


async def test_an_oauth_token_brings_its_scopes_expiry_and_resource(
    hub: FakeHub, auth: HubAuth
) -> None:
    resource = "https://tools.example.com/mcp"
    user = _oauth_user(scope="openid profile read-repos", resource=resource)
    token = hub.add_token(user=user)
    access = await HubTokenVerifier(auth).verify_token(token)
    assert access is not None
    assert access.scopes == ["openid", "profile", "read-repos"]
    assert access.expires_at == int(datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    assert access.resource == resource
    assert access.claims is not None and access.claims["token_kind"] == "oauth"
    # Bound to this server: accepted; bound to another one: refused.
    here = HubTokenVerifier(auth, resource_server_url=resource + "/")
    assert await here.verify_token(token) is not None
    elsewhere = HubTokenVerifier(auth, resource_server_url="https://other.example.com/mcp")
    assert await elsewhere.verify_token(token) is None
    # FastMCP's provider learns its resource URL when FastMCP mounts it.
    provider = hub_fastmcp.HubTokenVerifier(auth, base_url="https://other.example.com")
    assert await provider.verify_token(token) is not None
    provider.set_mcp_path("/mcp")
    assert await provider.verify_token(token) is None
    provider = hub_fastmcp.HubTokenVerifier(auth, base_url="https://tools.example.com")
    provider.set_mcp_path("/mcp")
    assert await provider.verify_token(token) is not None


async def test_refusals_are_none(hub: FakeHub, auth: HubAuth) -> None:
    member = hub.add_token(name="ada", orgs=["engines"])
    outsider = hub.add_token(name="byron", orgs=["poets"])
    forbidden = hub.add_token(name="mary")
    hub.forbid(forbidden)
    verifier = HubTokenVerifier(auth, require_orgs=["engines"])
    assert await verifier.verify_token("hf_" + "n" * 34) is None
    assert await verifier.verify_token(outsider) is None
    assert await verifier.verify_token(forbidden) is None
    assert await verifier.verify_token(member) is not None
    reader = hub.add_token(name="reader", role="read")
    assert await HubTokenVerifier(auth, require_role="write").verify_token(reader) is None


async def test_could_not_check_is_not_a_refusal(hub: FakeHub, auth: HubAuth) -> None:
    """Unwrapped, the SDK can only say 401 to None: the verifier raises instead."""
    token = hub.add_token(name="ada")
    hub.rate_limit_next(retry_after=17)
    with pytest.raises(TokenCheckUnavailable) as raised:
        await HubTokenVerifier(auth).verify_token(token)
    assert raised.value.retry_after == "17"
    assert token not in str(raised.value)
    hub.fail_next(502)
    provider = hub_fastmcp.HubTokenVerifier(auth, base_url="http://127.0.0.1:1")
    with pytest.raises(TokenVerificationError):
        await provider.verify_token(token)


async def test_the_fastmcp_provider_builds_its_own_access_token(
    hub: FakeHub, auth: HubAuth
) -> None:
    token = hub.add_token(name="ada", orgs=["engines"])
    provider = hub_fastmcp.HubTokenVerifier(
        auth, base_url="http://127.0.0.1:1", require_orgs=["engines"]
    )
    access = await provider.verify_token(token)
    assert isinstance(access, hub_fastmcp.HubAccessToken)
    assert access.user.username == "ada"
    assert access.scopes == ["read", "write"]
    assert provider.authorization_servers == [hub.url]
    assert provider.auth is auth


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="HubAuth"):
        HubTokenVerifier("hf_token")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="require_role"):
        HubTokenVerifier(require_role="owner")
    with pytest.raises(TypeError, match="list of names"):
        HubTokenVerifier(require_orgs="engines")
    with pytest.raises(ValueError, match="retry_after_default"):
        HubTokenVerifier(retry_after_default=0)
    assert repr(HubTokenVerifier(require_orgs=["a"])) == "HubTokenVerifier(require_orgs=['a'])"


def test_auth_settings_name_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.com")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # validate_token_resource is set: no warning
        settings = auth_settings("https://tools.example.com/mcp", required_scopes=["read"])
    assert str(settings.issuer_url) == "https://hub.example.com"
    assert str(settings.resource_server_url) == "https://tools.example.com/mcp"
    assert settings.required_scopes == ["read"]
    assert settings.validate_token_resource is False


async def test_current_user_outside_a_request_is_none() -> None:
    assert await current_user() is None
    assert await hub_fastmcp.current_user() is None


def _sdk_scoped(url: str) -> tuple[Any, HubAuth]:
    verifier = HubTokenVerifier()  # its own HubAuth, closed when the app shuts down
    settings = auth_settings(f"{url}/mcp", required_scopes=["write"])
    server = MCPServer("scoped", token_verifier=verifier, auth=settings)
    return verifier.wrap(server.streamable_http_app()), verifier.auth


def _fastmcp_scoped(url: str) -> tuple[Any, HubAuth]:
    from fastmcp import FastMCP

    provider = hub_fastmcp.HubTokenVerifier(base_url=url, required_scopes=["write"])
    return FastMCP("scoped", auth=provider).http_app(path="/mcp"), provider.auth


@pytest.mark.parametrize("build", [_sdk_scoped, _fastmcp_scoped], ids=["sdk", "fastmcp"])
def test_required_scopes_give_403_insufficient_scope(
    build: Callable[[str], tuple[Any, HubAuth]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub() as hub:
        reader = hub.add_token(name="reader", role="read")
        writer = hub.add_token(name="writer", role="write")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        owned: list[HubAuth] = []

        def make_app(url: str) -> Any:
            app, auth = build(url)
            owned.append(auth)
            return app

        with ServedApp(make_app) as served:

            def post(token: str) -> httpx.Response:
                headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
                # A generous bound, as Stack.post: the first request of a cold process on a
                # loaded machine checks the token at FakeHub, not in httpx's default 5 s.
                url = f"{served.url}/mcp"
                return httpx.post(url, json=INITIALIZE, headers=headers, timeout=30)

            refused = post(reader)
            assert refused.status_code == 403
            assert refused.json()["error"] == "insufficient_scope"
            assert post(writer).status_code == 200
        assert owned[0].closed  # the adapter's own HubAuth, closed on shutdown
