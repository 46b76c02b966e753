"""HubOAuth against FakeHub as the OpenID provider: the flow, sessions, and attacks on them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from hub_auth import HubAuth
from hub_auth._oauth import pkce_challenge
from hub_auth.fastapi import HubBearer, HubOAuth, MemorySessionStore, OAuthInfo
from hub_auth.fastapi._oauth import safe_next
from hub_auth.testing import FakeHub, FakeUser
from tests.oauth_browser import APP, Browser, make_app

ADA = FakeUser(
    name="ada-lovelace",
    email="ada@example.com",
    orgs=[{"name": "analytical-engines", "role_in_org": "admin"}],
)
SPACE_ENV = (
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_SCOPES",
    "OPENID_PROVIDER_URL",
    "SPACE_HOST",
    "SPACE_ID",
)


pytestmark = pytest.mark.usefixtures("close_oauth_clients")


@pytest.fixture(autouse=True)
def no_space_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SPACE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.oauth.browser_user = ADA
    return hub


def make_oauth(hub: FakeHub, *, secret: str | None = "s3cret", **options) -> HubOAuth:
    app = hub.oauth.register_app(
        name="Signin test", client_secret=secret, scopes=["read-memberships", "email"]
    )
    return HubOAuth(
        client_id=app.client_id,
        client_secret=secret,
        scopes="openid profile read-memberships",
        provider_url=hub.url,
        **options,
    )


def secrets_of(hub: FakeHub) -> set[str]:
    return set(hub.tokens) | set(hub.oauth._refresh_tokens)


# -- construction ------------------------------------------------------------------------------


def test_missing_client_id_is_a_clear_error_at_construction() -> None:
    with pytest.raises(ValueError, match="OAUTH_CLIENT_ID"):
        HubOAuth()


def test_space_variables_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_ID", "space-client")
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "space-secret")
    monkeypatch.setenv("OAUTH_SCOPES", "openid profile inference-api")
    monkeypatch.setenv("OPENID_PROVIDER_URL", "https://huggingface.co")
    monkeypatch.setenv("SPACE_HOST", "ada-demo.hf.space")
    oauth = HubOAuth()
    assert oauth.client_id == "space-client"
    assert oauth.scopes == ("openid", "profile", "inference-api")
    assert oauth.provider_url == "https://huggingface.co"
    assert oauth.redirect_url == "https://ada-demo.hf.space/oauth/huggingface/callback"
    assert oauth.same_site == "none"  # the Space page shows the app in an iframe
    assert "space-secret" not in repr(oauth)


def test_router_has_huggingface_hub_paths() -> None:
    oauth = HubOAuth(client_id="x")
    paths = {route.path for route in oauth.router.routes}  # type: ignore[attr-defined]
    assert paths == {
        "/oauth/huggingface/login",
        "/oauth/huggingface/callback",
        "/oauth/huggingface/logout",
    }
    assert HubBearer is not None  # the old import keeps working


# -- the flow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["s3cret", None], ids=["confidential", "public"])
async def test_sign_in_me_and_sign_out(hub: FakeHub, secret: str | None) -> None:
    oauth = make_oauth(hub, secret=secret)
    async with Browser(make_app(oauth), hub) as browser:
        assert (await browser.client.get("/me")).status_code == 401
        home = await browser.sign_in(next="/?tab=1")
        assert home.url == f"{APP}/?tab=1"
        assert home.json() == {"user": "ada-lovelace", "error": None}
        me = (await browser.client.get("/me")).json()
        assert me["orgs"] == ["analytical-engines"]
        assert me["scopes"] == ["openid", "profile", "read-memberships"]
        # The access token works against the Hub as that user.
        whoami = await browser.client.get(
            f"{hub.url}/api/whoami-v2", headers={"Authorization": f"Bearer {me['token']}"}
        )
        assert whoami.json()["name"] == "ada-lovelace"
        cookie = browser.cookie()
        assert cookie is not None
        assert not any(secret_value in cookie for secret_value in secrets_of(hub))
        await browser.client.post("/oauth/huggingface/logout", params={"next": "/"})
        assert browser.cookie() is None
        assert (await browser.client.get("/me")).status_code == 401
        # The old cookie is dead server-side too.
        browser.client.cookies.set("hub_oauth_session", cookie)
        assert (await browser.client.get("/me")).status_code == 401


@contextlib.asynccontextmanager
async def provider_serving(
    discovery: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A provider of our own making on a free port, answering discovery with ``discovery``."""
    provider = web.Application()
    provider.router.add_get("/.well-known/openid-configuration", discovery)
    runner = web.AppRunner(provider)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_cookie_attributes_and_no_token_in_any_cookie(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        page = await browser.start_login()
        answer = await browser.decide(page)
        callback = await browser.client.get(answer.headers["Location"], follow_redirects=False)
    set_cookies = callback.headers.get_list("set-cookie")
    session = next(c for c in set_cookies if c.startswith("hub_oauth_session="))
    assert "HttpOnly" in session
    assert "samesite=lax" in session.lower()
    assert "Secure" not in session  # plain http is allowed on loopback only
    everything = " ".join(set_cookies)
    assert not any(value in everything for value in secrets_of(hub))
    # No JWT either: a JWT has dots, an opaque id from token_urlsafe never does.
    assert "." not in session.split(";")[0].split("=", 1)[1]


async def test_cookie_is_secure_off_loopback(hub: FakeHub) -> None:
    oauth = make_oauth(hub, redirect_url=f"{APP}/oauth/huggingface/callback")
    async with Browser(make_app(oauth), hub, base="http://app.example") as browser:
        response = await browser.client.get("/oauth/huggingface/login", follow_redirects=False)
    assert "Secure" in response.headers["set-cookie"]


async def test_deny_comes_back_with_a_clear_message(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        home = await browser.sign_in(next="/", decision="deny")
        assert home.status_code == 200
        assert home.json()["user"] is None
        assert "cancelled" in home.json()["error"]
        assert browser.cookie() is None


async def test_provider_metadata_is_cached(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        await browser.client.post("/oauth/huggingface/logout")
        await browser.sign_in()
    assert hub.oauth.openid.discovery_requests == 1
    assert hub.oauth.openid.authorize_requests == 2


# -- attacks -----------------------------------------------------------------------------------


async def test_wrong_state_fails_and_consumes_the_login(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        answer = await browser.decide(await browser.start_login())
        location = answer.headers["Location"].replace("state=", "state=x")
        response = await browser.client.get(location)
        assert response.status_code == 400
        assert "does not match" in response.text
        # The right state now finds no pending login: state is single-use.
        response = await browser.client.get(answer.headers["Location"])
        assert response.status_code == 400
        assert (await browser.client.get("/me")).status_code == 401


async def test_replayed_callback_fails(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        answer = await browser.decide(await browser.start_login())
        location = answer.headers["Location"]
        assert (await browser.client.get(location)).json()["user"] == "ada-lovelace"
        replay = await browser.client.get(location)
        assert replay.status_code == 400


async def test_state_is_bound_to_the_browser(hub: FakeHub) -> None:
    """A callback URL carried to another browser (login CSRF) finds no pending login there."""
    oauth = make_oauth(hub)
    app = make_app(oauth)
    async with Browser(app, hub) as attacker, Browser(app, hub) as victim:
        answer = await attacker.decide(await attacker.start_login())
        response = await victim.client.get(answer.headers["Location"])
        assert response.status_code == 400
        assert (await victim.client.get("/me")).status_code == 401


async def test_injected_code_fails_the_pkce_check(hub: FakeHub) -> None:
    """A code issued for another login (another PKCE verifier) is refused by the provider."""
    oauth = make_oauth(hub)
    app = make_app(oauth)
    async with Browser(app, hub) as attacker, Browser(app, hub) as victim:
        stolen = (await attacker.decide(await attacker.start_login())).headers["Location"]
        own = (await victim.decide(await victim.start_login())).headers["Location"]
        stolen_code = httpx.URL(stolen).params["code"]
        own_state = httpx.URL(own).params["state"]
        injected = httpx.URL(own).copy_set_param("code", stolen_code)
        assert injected.params["state"] == own_state
        response = await victim.client.get(str(injected))
        assert response.status_code == 400
        assert "invalid_grant" in response.text
        assert (await victim.client.get("/me")).status_code == 401


@pytest.mark.parametrize("how", ["signature", "expired", "audience", "issuer", "nonce"])
async def test_bad_id_token_fails(hub: FakeHub, how: str) -> None:
    oauth = make_oauth(hub)
    hub.oauth.openid.corrupt_next_id_token(how)  # type: ignore[arg-type]
    async with Browser(make_app(oauth), hub) as browser:
        response = await browser.sign_in()
        assert response.status_code == 400
        assert "id_token" in response.text
        assert browser.cookie() is None
        assert (await browser.client.get("/me")).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "evil.example",
    ],
)
async def test_next_is_never_an_open_redirect(hub: FakeHub, target: str) -> None:
    assert safe_next(target) == "/"
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        home = await browser.sign_in(next=target)
        assert home.url == f"{APP}/"
        logout = await browser.client.post(
            "/oauth/huggingface/logout", params={"next": target}, follow_redirects=False
        )
        assert logout.headers["Location"] == "/"


async def test_forged_session_cookies_are_nobody(hub: FakeHub) -> None:
    store = MemorySessionStore()
    oauth = make_oauth(hub, session_store=store)
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        (store_key,) = list(store._entries)  # what the store holds is not a usable cookie
        for forged in ["x" * 43, store_key, "", "hf_" + "a" * 40]:
            browser.client.cookies.set("hub_oauth_session", forged)
            assert (await browser.client.get("/me")).status_code == 401
            assert (await browser.client.get("/")).json()["user"] is None


async def test_other_provider_errors_give_a_generic_message(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        answer = await browser.decide(await browser.start_login())
        state = httpx.URL(answer.headers["Location"]).params["state"]
        response = await browser.client.get(
            "/oauth/huggingface/callback",
            params={"error": "<script>x</script>", "state": state},
        )
        assert response.status_code == 200
        assert response.json()["error"] == (
            "Sign-in with Hugging Face did not complete. Please try again."
        )


async def test_oauth_info_is_immutable(hub: FakeHub) -> None:
    seen: list[OAuthInfo] = []
    async with Browser(make_app(make_oauth(hub), seen), hub) as browser:
        await browser.sign_in()
        await browser.client.get("/me")
    (info,) = seen
    with pytest.raises(ValidationError, match="frozen"):
        info.user.orgs[0].role_in_org = "owner"  # type: ignore[misc]
    assert isinstance(info.user.orgs, tuple)
    assert info.access_token.get_secret_value() not in repr(info)


async def test_unreachable_provider_is_a_503_page_not_a_500() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    oauth = HubOAuth(client_id="c", provider_url=f"http://127.0.0.1:{port}", timeout=2.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(oauth)), base_url=APP
    ) as client:
        response = await client.get("/oauth/huggingface/login")
    assert response.status_code == 503
    assert "could not be reached" in response.text
    assert "set-cookie" not in response.headers


async def test_endpoints_off_the_providers_origin_are_refused() -> None:
    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": "https://evil.example/oauth/token",  # would get the secret
                "jwks_uri": f"{base}/oauth/jwks",
            }
        )

    async with provider_serving(discovery) as base:
        oauth = HubOAuth(client_id="c", client_secret="s", provider_url=base)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(oauth)), base_url=APP
        ) as client:
            response = await client.get("/oauth/huggingface/login")
        assert response.status_code == 503
        assert "not on its own origin" in response.text


async def test_a_deeply_nested_provider_answer_is_a_503_page_not_a_500() -> None:
    async def discovery(request: web.Request) -> web.Response:
        # Well under the 1 MiB read bound, but deeper than json.loads can recurse.
        return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")

    async with provider_serving(discovery) as base:
        oauth = HubOAuth(client_id="c", provider_url=base)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(oauth)), base_url=APP
        ) as client:
            response = await client.get("/oauth/huggingface/login")
        assert response.status_code == 503


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_a_provider_answer_sent_in_two_writes_is_read_whole() -> None:
    """The body is read up to its end (within the bound), not just what has arrived."""

    async def discovery(request: web.Request) -> web.StreamResponse:
        base = f"http://{request.host}"
        body = json.dumps(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": f"{base}/oauth/token",
                "jwks_uri": f"{base}/oauth/jwks",
            }
        ).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body[:20])
        await asyncio.sleep(0.05)  # the second half comes later, in its own write
        await response.write(body[20:])
        await response.write_eof()
        return response

    async with provider_serving(discovery) as base:
        oauth = HubOAuth(client_id="c", provider_url=base)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(oauth)), base_url=APP
        ) as client:
            response = await client.get("/oauth/huggingface/login")
        assert response.status_code == 302, response.text
        assert response.headers["location"].startswith(f"{base}/oauth/authorize?")


async def test_one_own_session_for_every_provider_request_closed_by_aclose(
    hub: FakeHub,
) -> None:
    oauth = make_oauth(hub)
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()  # discovery, token, JWKS, userinfo
        client = oauth._own_client
        assert client is not None
        session = client._session
        await browser.client.post("/oauth/huggingface/logout")
        await browser.sign_in()
        assert oauth._own_client is client
        assert client._session is session and client.session_open
    await oauth.aclose()
    assert not client.session_open
    assert oauth._own_client is None


async def test_the_apps_shutdown_closes_the_own_session(hub: FakeHub) -> None:
    oauth = make_oauth(hub)
    app = make_app(oauth)
    # include_router merged HubOAuth's lifespan into the app's.
    async with app.router.lifespan_context(app):
        async with Browser(app, hub) as browser:
            await browser.sign_in()
        client = oauth._own_client
        assert client is not None and client.session_open
    assert not client.session_open


def test_a_request_on_another_event_loop_gets_a_session_of_its_own() -> None:
    # starlette's TestClient without `with` runs every request on a new event loop.
    hub = FakeHub().start_in_thread()
    try:
        oauth = make_oauth(hub)
        client = TestClient(make_app(oauth), base_url=APP, follow_redirects=False)
        for _ in range(2):
            oauth._metadata = None  # so that each login asks the provider again
            response = client.get("/oauth/huggingface/login")
            assert response.status_code == 302, response.text
            assert response.headers["location"].startswith(f"{hub.url}/oauth/authorize?")
    finally:
        hub.stop_thread()


@pytest.mark.parametrize("how", ["argument", "app.state"])
async def test_a_hub_auths_client_is_borrowed(hub: FakeHub, how: str) -> None:
    async with HubAuth(endpoint=hub.url, read_env=False) as auth:
        oauth = make_oauth(hub, auth=auth) if how == "argument" else make_oauth(hub)
        app = make_app(oauth)
        if how == "app.state":
            app.state.hub_auth = auth
        async with Browser(app, hub) as browser:
            await browser.sign_in()
            assert (await browser.client.get("/me")).json()["username"] == "ada-lovelace"
        assert oauth._own_client is None  # no session of its own
        assert auth._client.session_open
        await oauth.aclose()
        assert auth._client.session_open  # borrowed: never closed by HubOAuth


async def test_websocket_routes_take_the_same_dependency(hub: FakeHub) -> None:
    app = make_app(make_oauth(hub))  # its /ws route depends on oauth.user
    async with Browser(app, hub) as browser:
        await browser.sign_in()
        cookie = browser.cookie()
    assert cookie is not None
    with TestClient(app, base_url=APP) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
            pass
        assert refused.value.code == 1008
        # The handshakes go to `testserver`, not loopback: Secure cookies, named __Host-...
        client.cookies.set("__Host-hub_oauth_session", cookie)
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_text() == "ada-lovelace"
        # Another site's page cannot ride on the session cookie (cross-site WebSocket).
        # (starlette's TestClient sends `Host: testserver` on WebSocket handshakes)
        same_site = {"Origin": "http://testserver"}
        with client.websocket_connect("/ws", headers=same_site) as websocket:
            assert websocket.receive_text() == "ada-lovelace"
        with (
            pytest.raises(WebSocketDisconnect) as cross_site,
            client.websocket_connect("/ws", headers={"Origin": "https://evil.example"}),
        ):
            pass
        assert cross_site.value.code == 1008
