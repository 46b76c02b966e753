"""The official ``mcp`` client signs a person in at FakeHub (OAuth authorization code + PKCE)
and calls a tool on a hub_auth-protected MCPServer as that person.

The client discovers everything itself: the 401's ``resource_metadata``, the protected
resource metadata naming FakeHub, FakeHub's RFC 8414 metadata, then the authorize and token
endpoints. The test plays the person: it opens the authorization URL, approves the consent
page and hands the redirect's code back to the client.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from hub_auth.mcp import HubTokenVerifier, auth_settings, current_user
from hub_auth.testing import FakeHub, FakeUser
from hub_auth.testing._openid import SCOPES
from tests.test_mcp import ServedApp

REDIRECT_URI = "http://127.0.0.1/mcp-client/callback"


class MemoryStorage:
    """The client's token storage, holding the pre-registered public client."""

    def __init__(self, client: OAuthClientInformationFull) -> None:
        self.tokens: OAuthToken | None = None
        self.client = client

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Person:
    """Opens the authorization URL, approves the consent page, keeps the redirect."""

    def __init__(self) -> None:
        self.redirect: str | None = None
        self.consent_pages: list[str] = []

    async def open(self, authorization_url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(authorization_url)
            assert page.status_code == 200, page.text
            self.consent_pages.append(page.text)
            request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
            assert request_id is not None
            base = f"{urlsplit(authorization_url).scheme}://{urlsplit(authorization_url).netloc}"
            answer = await browser.post(
                f"{base}/oauth/authorize",
                data={"request_id": request_id.group(1), "decision": "approve"},
            )
            assert answer.status_code == 302
            self.redirect = answer.headers["location"]

    async def callback(self) -> AuthorizationCodeResult:
        assert self.redirect is not None
        query = parse_qs(urlsplit(self.redirect).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0])


async def test_the_mcp_client_signs_in_at_the_hub_and_calls_a_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grace = FakeUser(name="grace", fullname="Grace Hopper", orgs=["navy"])
    with FakeHub() as hub:
        hub.oauth.browser_user = grace
        app = hub.oauth.register_app(
            name="MCP client", scopes=SCOPES, redirect_uris=[REDIRECT_URI]
        )  # a public client (no secret): PKCE only
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        # The verifier's own HubAuth: created for HF_ENDPOINT, closed in the server's loop.
        verifier = HubTokenVerifier(require_orgs=["navy"])

        def make_app(url: str) -> Any:
            server = MCPServer(
                "hub-tools", token_verifier=verifier, auth=auth_settings(f"{url}/mcp")
            )

            @server.tool()
            async def whoami() -> str:
                user = await current_user()
                assert user is not None
                return json.dumps({"user": user.username, "orgs": list(user.organizations)})

            return verifier.wrap(server.streamable_http_app())

        person = Person()
        storage = MemoryStorage(
            OAuthClientInformationFull(
                client_id=app.client_id,
                redirect_uris=[REDIRECT_URI],
                token_endpoint_auth_method="none",
                grant_types=["authorization_code", "refresh_token"],
            )
        )
        with ServedApp(make_app) as served:
            oauth = OAuthClientProvider(
                server_url=f"{served.url}/mcp",
                client_metadata=OAuthClientMetadata(
                    redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="none"
                ),
                storage=storage,
                redirect_handler=person.open,
                callback_handler=person.callback,
            )
            async with (
                httpx2.AsyncClient(auth=oauth, timeout=30) as http,
                Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as mcp,
            ):
                result = await mcp.call_tool("whoami", {})
                again = await mcp.call_tool("whoami", {})
        answer = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert answer == {"user": "grace", "orgs": ["navy"]}
        assert again.content == result.content
        # One consent, one sign-in, and the token the client holds is the Hub's OAuth token.
        assert len(person.consent_pages) == 1
        assert "MCP client" in person.consent_pages[0]
        assert storage.tokens is not None
        assert storage.tokens.access_token.startswith("hf_oauth_")
        assert hub.oauth.token_requests == ["authorization_code"]
        assert hub.request_count == 1  # whoami, once, for every request of the session
        assert hub.oauth.openid.authorize_requests == 1


def test_fakehub_serves_rfc_8414_metadata() -> None:
    with FakeHub() as hub:
        base = hub.url
        metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
        openid = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == base
    assert metadata["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert metadata["token_endpoint"] == f"{base}/oauth/token"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "none" in metadata["token_endpoint_auth_methods_supported"]  # public PKCE clients
    assert "registration_endpoint" not in metadata
    assert {key: openid[key] for key in metadata} == metadata
