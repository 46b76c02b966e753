"""FakeHub as an OpenID provider: discovery, consent page, code grant with PKCE, id_tokens."""

from __future__ import annotations

import base64
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from hub_auth.testing import FakeHub, FakeUser
from hub_auth.testing._openid import pkce_challenge, redirect_uri_matches

CALLBACK = "http://127.0.0.1:8000/oauth/huggingface/callback"
ADA = FakeUser(
    name="ada-lovelace",
    email="ada@example.com",
    orgs=[{"name": "analytical-engines", "role_in_org": "admin"}],
)


async def authorize(
    session: aiohttp.ClientSession,
    hub: FakeHub,
    client_id: str,
    *,
    decision: str = "approve",
    scope: str = "openid profile",
    verifier: str | None = None,
    redirect_uri: str = CALLBACK,
    nonce: str = "n-0S6_WzA2Mj",
) -> dict[str, list[str]]:
    """Drive the consent page like a browser; return the callback's query parameters."""
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": scope,
        "state": "the-state",
        "nonce": nonce,
    }
    if verifier is not None:
        params["code_challenge"] = pkce_challenge(verifier)
        params["code_challenge_method"] = "S256"
    async with session.get(f"{hub.url}/oauth/authorize", params=params) as page:
        assert page.status == 200, await page.text()
        text = await page.text()
    request_id = re.search(r'name="request_id" value="([^"]+)"', text)
    assert request_id is not None
    async with session.post(
        f"{hub.url}/oauth/authorize",
        data={"request_id": request_id.group(1), "decision": decision},
        allow_redirects=False,
    ) as answer:
        assert answer.status == 302
        location = answer.headers["Location"]
    assert location.startswith(redirect_uri)
    return parse_qs(urlsplit(location).query)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def exchange(
    session: aiohttp.ClientSession, hub: FakeHub, form: dict[str, str], auth: str | None = None
) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": auth} if auth else {}
    async with session.post(f"{hub.url}/oauth/token", data=form, headers=headers) as response:
        return response.status, await response.json()


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.oauth.browser_user = ADA
    return hub


async def test_discovery_and_jwks(hub: FakeHub) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{hub.url}/.well-known/openid-configuration") as response:
            meta = await response.json()
        async with session.get(meta["jwks_uri"]) as response:
            jwks = await response.json()
    assert meta["issuer"] == hub.url
    assert meta["authorization_endpoint"] == f"{hub.url}/oauth/authorize"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA"
    assert "d" not in key  # never the private half


async def test_confidential_app_full_flow_with_verified_id_token(hub: FakeHub) -> None:
    app = hub.oauth.register_app(
        name="My <b>app</b>", client_secret="s3cret", scopes=["read-memberships", "email"]
    )
    verifier = secrets.token_urlsafe(48)
    async with aiohttp.ClientSession() as session:
        callback = await authorize(
            session,
            hub,
            app.client_id,
            verifier=verifier,
            scope="openid profile email read-memberships",
        )
        assert callback["state"] == ["the-state"]
        form = {
            "grant_type": "authorization_code",
            "code": callback["code"][0],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        }
        status, tokens = await exchange(session, hub, form, basic(app.client_id, "s3cret"))
        assert status == 200, tokens
        async with session.get(
            f"{hub.url}/oauth/userinfo",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ) as response:
            info = await response.json()
        async with session.get(f"{hub.url}/oauth/jwks") as response:
            keys = KeySet.import_key_set(await response.json())
    assert tokens["access_token"].startswith("hf_oauth_")
    assert tokens["scope"] == "openid profile email read-memberships"
    claims = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": hub.url},
        aud={"essential": True, "value": app.client_id},
        nonce={"essential": True, "value": "n-0S6_WzA2Mj"},
    ).validate(claims)
    assert claims["exp"] > time.time()
    assert claims["preferred_username"] == "ada-lovelace"
    assert info["preferred_username"] == "ada-lovelace"
    assert info["email"] == "ada@example.com"
    assert info["orgs"][0]["preferred_username"] == "analytical-engines"
    assert info["orgs"][0]["roleInOrg"] == "admin"
    assert info["sub"] == claims["sub"]
    assert info["picture"].startswith(hub.url)


async def test_code_is_single_use_and_bound_to_verifier_secret_and_redirect(hub: FakeHub) -> None:
    app = hub.oauth.register_app(client_secret="s3cret")
    verifier = secrets.token_urlsafe(48)
    async with aiohttp.ClientSession() as session:

        async def fresh_code() -> str:
            return (await authorize(session, hub, app.client_id, verifier=verifier))["code"][0]

        def form(code: str, **changes: str) -> dict[str, str]:
            base = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            }
            return base | changes

        good = basic(app.client_id, "s3cret")
        status, body = await exchange(
            session, hub, form(await fresh_code(), code_verifier="x" * 43), good
        )
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await exchange(
            session, hub, form(await fresh_code()), basic(app.client_id, "nope")
        )
        assert (status, body["error"]) == (401, "invalid_client")
        status, body = await exchange(
            session, hub, form(await fresh_code(), redirect_uri=CALLBACK + "x"), good
        )
        assert (status, body["error"]) == (400, "invalid_grant")
        code = await fresh_code()
        status, _ = await exchange(session, hub, form(code), good)
        assert status == 200
        status, body = await exchange(session, hub, form(code), good)  # replayed
        assert (status, body["error"]) == (400, "invalid_grant")


async def test_public_app_needs_pkce_and_refresh_works(hub: FakeHub) -> None:
    app = hub.oauth.register_app()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{hub.url}/oauth/authorize",
            params={
                "client_id": app.client_id,
                "redirect_uri": CALLBACK,
                "response_type": "code",
                "scope": "openid",
                "state": "s",
            },
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            assert "error=invalid_request" in response.headers["Location"]
        verifier = secrets.token_urlsafe(48)
        code = (await authorize(session, hub, app.client_id, verifier=verifier))["code"][0]
        status, tokens = await exchange(
            session,
            hub,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
                "client_id": app.client_id,
            },
        )
        assert status == 200, tokens
        status, refreshed = await exchange(
            session,
            hub,
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": app.client_id,
            },
        )
    assert status == 200
    assert refreshed["access_token"] != tokens["access_token"]


async def test_deny_redirects_with_access_denied(hub: FakeHub) -> None:
    app = hub.oauth.register_app(client_secret="s3cret")
    async with aiohttp.ClientSession() as session:
        callback = await authorize(session, hub, app.client_id, decision="deny")
    assert callback["error"] == ["access_denied"]
    assert callback["state"] == ["the-state"]
    assert "code" not in callback


async def test_consent_page_escapes_and_refuses_unknown_clients_and_redirects(
    hub: FakeHub,
) -> None:
    app = hub.oauth.register_app(name="<script>alert(1)</script>", client_secret="x")
    base = {"response_type": "code", "scope": "openid profile", "state": "s"}
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{hub.url}/oauth/authorize",
            params=base | {"client_id": app.client_id, "redirect_uri": CALLBACK},
        ) as response:
            page = await response.text()
        async with session.get(
            f"{hub.url}/oauth/authorize",
            params=base | {"client_id": "nobody", "redirect_uri": CALLBACK},
            allow_redirects=False,
        ) as response:
            assert response.status == 400
        async with session.get(
            f"{hub.url}/oauth/authorize",
            params=base
            | {"client_id": app.client_id, "redirect_uri": "https://evil.example/callback"},
            allow_redirects=False,
        ) as response:
            assert response.status == 400
            assert "Location" not in response.headers
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert 'value="approve"' in page and 'value="deny"' in page
    assert "<code>profile</code>" in page


@pytest.mark.parametrize(
    ("registered", "presented", "ok"),
    [
        (CALLBACK, "http://127.0.0.1:5555/oauth/huggingface/callback", True),
        ("http://localhost/cb", "http://localhost:1234/cb", True),
        ("http://localhost/cb", "http://localhost:1234/other", False),
        ("https://app.example/cb", "https://app.example:444/cb", False),
        ("http://app.example/cb", "http://app.example:8080/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.2.evil.example/cb", False),
    ],
)
def test_redirect_uri_rule(registered: str, presented: str, ok: bool) -> None:
    assert redirect_uri_matches(registered, presented) is ok


async def test_corrupted_id_token_fails_verification(hub: FakeHub) -> None:
    app = hub.oauth.register_app(client_secret="s3cret")
    hub.oauth.openid.corrupt_next_id_token("signature")
    async with aiohttp.ClientSession() as session:
        code = (await authorize(session, hub, app.client_id))["code"][0]
        _, tokens = await exchange(
            session,
            hub,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
            basic(app.client_id, "s3cret"),
        )
    keys = KeySet.import_key_set(hub.oauth.openid.public_jwks())
    with pytest.raises(BadSignatureError):
        jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
