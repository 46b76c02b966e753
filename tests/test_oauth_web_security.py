"""HubOAuth's web side (issue 21, third pass): cross-site requests, memberships after a
refresh, the login route's ``next``, a POST logout, ``__Host-`` cookies, ``expires_in`` and
the WebSocket Origin check. Driven through a real app against FakeHub (in process, httpx);
the browser-level cross-site form post is in ``test_signin_browser.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

import hub_auth._oauth as oauth_details
from hub_auth._oauth import MAX_TOKEN_LIFETIME, token_lifetime
from hub_auth.fastapi import HubOAuth, OAuthInfo
from hub_auth.testing import FakeHub, FakeUser
from tests.oauth_browser import APP, Browser, make_app

LOGIN = "/oauth/huggingface/login"
LOGOUT = "/oauth/huggingface/logout"
SAME_ORIGIN = {"Origin": APP, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture(autouse=True)
def no_space_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ada() -> FakeUser:
    """A user of her own per test: a test may change her organisations."""
    return FakeUser(name="ada-lovelace", orgs=[{"name": "analytical-engines"}])


@pytest.fixture
async def hub(ada: FakeUser) -> AsyncIterator[FakeHub]:
    async with FakeHub() as hub:
        hub.oauth.browser_user = ada
        yield hub


@pytest.fixture
async def made() -> AsyncIterator[list[HubOAuth]]:
    """Every HubOAuth a test makes, closed after it (httpx never sends the app's shutdown)."""
    instances: list[HubOAuth] = []
    yield instances
    for oauth in instances:
        await oauth.aclose()


@pytest.fixture
def make_oauth(hub: FakeHub, made: list[HubOAuth]):
    def make(**options: Any) -> HubOAuth:
        redirect_url = options.get("redirect_url")
        registered = hub.oauth.register_app(
            client_secret="s3cret",
            scopes=["read-memberships"],
            redirect_uris=[redirect_url or "http://127.0.0.1/oauth/huggingface/callback"],
        )
        oauth = HubOAuth(
            client_id=registered.client_id,
            client_secret="s3cret",
            scopes="openid profile read-memberships",
            provider_url=hub.url,
            **options,
        )
        made.append(oauth)
        return oauth

    return make


def app_with_a_post_route(oauth: HubOAuth) -> FastAPI:
    """``make_app`` plus the routes a CSRF attack aims at: POST/DELETE behind the dependencies."""
    app = make_app(oauth)

    # Depends as a default: a string annotation (this module's) could not see ``oauth``.
    user, optional_user = Depends(oauth.user), Depends(oauth.optional_user)

    @app.post("/delete-everything")
    async def delete(info: OAuthInfo = user) -> dict[str, str]:
        return {"deleted_by": info.user.username}

    @app.delete("/things")
    async def delete_things(info: OAuthInfo | None = optional_user) -> dict[str, str | None]:
        return {"deleted_by": info.user.username if info is not None else None}

    return app


# -- item 11: expires_in ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600.0),
        (0, 0.0),
        (None, 1234.0),
        (-5, 0.0),
        (1e12, MAX_TOKEN_LIFETIME),
        (float("inf"), MAX_TOKEN_LIFETIME),
        (float("nan"), 1234.0),
        (True, 1234.0),
        ("3600", 1234.0),
    ],
)
def test_expires_in_is_clamped_to_a_year(value: object, seconds: float) -> None:
    assert token_lifetime(value, 1234.0) == seconds
    assert MAX_TOKEN_LIFETIME == 365 * 86400


def test_an_absurd_expires_in_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(oauth_details, "_lifetime_warned", False)
    with caplog.at_level(logging.DEBUG, logger="hub_auth"):
        token_lifetime(3600, 60.0)
        token_lifetime(1e12, 60.0)
        token_lifetime(-1, 60.0)
    levels = [record.levelno for record in caplog.records if record.name == "hub_auth"]
    assert levels == [logging.WARNING, logging.DEBUG]
    assert "1000000000000" in caplog.records[0].getMessage()


async def test_an_absurd_expires_in_is_no_500(hub: FakeHub, make_oauth) -> None:
    hub.oauth.access_token_lifetime = 1e12  # 31,700 years: datetime cannot hold the date
    async with Browser(make_app(make_oauth()), hub) as browser:
        await browser.sign_in()
        me = await browser.client.get("/me")
    assert me.status_code == 200, me.text
    assert me.json()["expires_at"] <= time.time() + MAX_TOKEN_LIFETIME + 60


# -- item 6: next --------------------------------------------------------------------------------


async def test_login_refuses_a_next_over_2_kib(hub: FakeHub, make_oauth) -> None:
    async with Browser(make_app(make_oauth()), hub) as browser:
        too_long = await browser.client.get(
            LOGIN, params={"next": "/" + "a" * 2048}, follow_redirects=False
        )
        assert too_long.status_code == 400
        assert "too long" in too_long.text
        assert "hub_oauth_session_login" not in too_long.headers.get("set-cookie", "")
        longest = await browser.client.get(
            LOGIN, params={"next": "/" + "a" * 2047}, follow_redirects=False
        )
        assert longest.status_code == 302
    assert hub.oauth.openid.discovery_requests == 1  # the refused one never reached the Hub


# -- item 1: cross-site requests (CSRF) -------------------------------------------------------

PROXIED = "https://app.example"
"""Where the browser sees the app when it runs behind a TLS-terminating proxy."""


def behind_a_proxy(app: ASGIApp) -> ASGIApp:
    """The app as a proxy hands it requests (a Space): plain http, the proxy's own Host."""

    async def proxied(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [
                (name, b"10.0.0.5:7860" if name == b"host" else value)
                for name, value in scope["headers"]
            ]
            plain = "http" if scope["type"] == "http" else "ws"
            scope = {**scope, "scheme": plain, "headers": headers}
        await app(scope, receive, send)

    return proxied


async def test_a_cross_site_post_is_refused(hub: FakeHub, make_oauth) -> None:
    async with Browser(app_with_a_post_route(make_oauth()), hub) as browser:
        await browser.sign_in()

        async def post(headers: dict[str, str], path: str = "/delete-everything") -> int:
            response = await browser.client.post(path, headers=headers)
            if response.status_code == 403:
                assert "another site" in response.json()["detail"]
            return response.status_code

        assert await post(SAME_ORIGIN) == 200
        assert await post({"Origin": APP}) == 200
        assert await post({"Sec-Fetch-Site": "same-origin"}) == 200
        assert await post({}) == 200  # not a browser (curl): it holds the cookie itself
        for cross_site in (
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},  # a sandboxed iframe, a data: URL
            {"Origin": "https://127.0.0.1:8000"},  # another scheme
            {"Origin": "http://127.0.0.1:8001"},  # another port
            {"Origin": "http://localhost:8000"},  # another host
            {"Origin": APP, "Sec-Fetch-Site": "cross-site"},
        ):
            assert await post(cross_site) == 403, cross_site
        # optional_user too, and any unsafe method; safe methods are never refused.
        evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert (await browser.client.delete("/things", headers=evil)).status_code == 403
        assert (await browser.client.delete("/things", headers=SAME_ORIGIN)).json() == {
            "deleted_by": "ada-lovelace"
        }
        assert (await browser.client.get("/me", headers=evil)).status_code == 200
        assert (await browser.client.head("/", headers=evil)).status_code in (200, 405)


async def test_behind_a_proxy_the_redirect_urls_origin_is_the_apps(
    hub: FakeHub, make_oauth
) -> None:
    oauth = make_oauth(redirect_url=f"{PROXIED}/oauth/huggingface/callback")
    app = behind_a_proxy(app_with_a_post_route(oauth))
    async with Browser(app, hub, base=PROXIED) as browser:  # type: ignore[arg-type]
        home = await browser.sign_in()
        assert home.json()["user"] == "ada-lovelace"

        async def post(origin: str) -> int:
            response = await browser.client.post("/delete-everything", headers={"Origin": origin})
            return response.status_code

        assert await post(PROXIED) == 200
        assert await post("https://app.example:443") == 200
        assert await post("http://app.example") == 403  # http for an https app
        assert await post("http://10.0.0.5:7860") == 403  # what the app sees is not the page's


# -- item 8: __Host- cookies -----------------------------------------------------------------


async def test_secure_cookies_carry_the_host_prefix(hub: FakeHub, make_oauth) -> None:
    oauth = make_oauth(redirect_url=f"{PROXIED}/oauth/huggingface/callback")
    app = behind_a_proxy(app_with_a_post_route(oauth))
    async with Browser(app, hub, base=PROXIED) as browser:  # type: ignore[arg-type]
        login = await browser.client.get(LOGIN, follow_redirects=False)
        [login_cookie] = login.headers.get_list("set-cookie")
        assert login_cookie.startswith("__Host-hub_oauth_session_login=")
        consent = await browser.client.get(login.headers["Location"])
        answer = await browser.decide(consent.text)
        callback = await browser.client.get(answer.headers["Location"], follow_redirects=False)
        cookies = callback.headers.get_list("set-cookie")
        [session] = [c for c in cookies if c.startswith("__Host-hub_oauth_session=")]
        attributes = [part.strip().lower() for part in session.split(";")[1:]]
        assert {"secure", "httponly", "path=/"} <= set(attributes)
        assert not any(part.startswith("domain") for part in attributes)
        # The pending sign-in's cookie is cleared under its prefixed name, Secure.
        [cleared] = [c for c in cookies if c.startswith("__Host-hub_oauth_session_login=")]
        assert "secure" in cleared.lower()
        session_id = browser.cookie("__Host-hub_oauth_session")
        assert session_id is not None
        assert browser.cookie() is None
        assert (await browser.client.get("/me")).status_code == 200

        # A cookie without the prefix (tossed by a sibling subdomain) is not read.
        browser.client.cookies.clear()
        browser.client.cookies.set("hub_oauth_session", session_id)
        assert (await browser.client.get("/me")).status_code == 401

        browser.client.cookies.clear()
        browser.client.cookies.set("__Host-hub_oauth_session", session_id)
        logout = await browser.client.post(LOGOUT, headers={"Origin": PROXIED})
        assert logout.history[0].status_code == 303
        [deleted] = logout.history[0].headers.get_list("set-cookie")
        assert deleted.startswith("__Host-hub_oauth_session=") and "secure" in deleted.lower()
        assert (await browser.client.get("/me")).status_code == 401


# -- item 7: logout is a POST ----------------------------------------------------------------


async def test_logout_is_a_post_from_the_apps_own_pages(hub: FakeHub, make_oauth) -> None:
    async with Browser(make_app(make_oauth()), hub) as browser:
        await browser.sign_in()
        # A link (GET) signs nobody out: it shows a page whose button posts.
        page = await browser.client.get(LOGOUT, params={"next": "/after?a=1&b=<2>"})
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert "<form method='post' action='/oauth/huggingface/logout?next=" in page.text
        assert "%2Fafter%3Fa%3D1%26b%3D%3C2%3E" in page.text  # next, encoded, never raw HTML
        assert "<2>" not in page.text
        assert (await browser.client.get("/me")).status_code == 200
        # Another site's form cannot sign the user out.
        for evil in (
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
        ):
            refused = await browser.client.post(LOGOUT, headers=evil, follow_redirects=False)
            assert refused.status_code == 403, evil
        assert (await browser.client.get("/me")).status_code == 200
        # The app's own form does.
        done = await browser.client.post(
            LOGOUT, params={"next": "/bye"}, headers=SAME_ORIGIN, follow_redirects=False
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/bye"
        assert browser.cookie() is None
        assert (await browser.client.get("/me")).status_code == 401


# -- item 12: the WebSocket Origin check compares the scheme ----------------------------------


async def test_the_websocket_origin_check_compares_the_scheme(hub: FakeHub, make_oauth) -> None:
    app = make_app(make_oauth())
    async with Browser(app, hub) as browser:
        await browser.sign_in()
        session_id = browser.cookie()
    assert session_id is not None
    with TestClient(app) as client:
        client.cookies.set("__Host-hub_oauth_session", session_id)  # wss: Secure cookies
        client.cookies.set("hub_oauth_session", session_id)  # (not read: checks the scheme alone)
        url = "wss://127.0.0.1:8000/ws"
        with client.websocket_connect(url, headers={"Origin": "https://127.0.0.1:8000"}) as ws:
            assert ws.receive_text() == "ada-lovelace"
        for origin in ("http://127.0.0.1:8000", "https://127.0.0.1:8001", "null"):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(url, headers={"Origin": origin}),
            ):
                pass
            assert refused.value.code == 1008, origin
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url, headers={"Sec-Fetch-Site": "cross-site"}),
        ):
            pass
        assert refused.value.code == 1008


async def test_behind_a_proxy_a_websocket_from_http_is_refused(hub: FakeHub, make_oauth) -> None:
    oauth = make_oauth(redirect_url=f"{PROXIED}/oauth/huggingface/callback")
    app = behind_a_proxy(make_app(oauth))
    async with Browser(app, hub, base=PROXIED) as browser:  # type: ignore[arg-type]
        await browser.sign_in()
        session_id = browser.cookie("__Host-hub_oauth_session")
    assert session_id is not None
    with TestClient(app) as client:  # type: ignore[arg-type]
        client.cookies.set("__Host-hub_oauth_session", session_id)
        url = "wss://app.example/ws"
        with client.websocket_connect(url, headers={"Origin": PROXIED}) as ws:
            assert ws.receive_text() == "ada-lovelace"
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url, headers={"Origin": "http://app.example"}),
        ):
            pass
        assert refused.value.code == 1008


# -- item 2: memberships are decided again at every refresh -----------------------------------


@pytest.mark.parametrize("rule", ["require_orgs", "org_id"])
async def test_a_refresh_ends_the_session_of_a_user_removed_from_the_org(
    hub: FakeHub, make_oauth, ada: FakeUser, rule: str
) -> None:
    org_id = hub.oauth.openid.userinfo(ada, ["read-memberships"])["orgs"][0]["sub"]
    options = {"require_orgs": ["analytical-engines"]} if rule == "require_orgs" else {}
    oauth = make_oauth(org_id=org_id if rule == "org_id" else None, **options)
    hub.oauth.access_token_lifetime = 3600.0
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).json()["orgs"] == ["analytical-engines"]
        ada.orgs = [{"name": "difference-engines"}]  # an admin removed her from the org
        assert (await browser.client.get("/me")).status_code == 200  # no refresh yet
        oauth.refresh_margin = 3600.0  # the next request refreshes
        before = hub.oauth.refresh_requests
        removed = await browser.client.get("/me")
        assert hub.oauth.refresh_requests == before + 1
        assert removed.status_code == 403
        assert "/oauth/huggingface/login" in removed.json()["detail"]  # the way back
        assert (await browser.client.get("/me")).status_code == 401  # the session ended
        assert (await browser.client.get("/")).json()["user"] is None


async def test_a_refresh_keeps_the_new_profile(hub: FakeHub, make_oauth, ada: FakeUser) -> None:
    oauth = make_oauth(require_orgs=["analytical-engines"])
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        ada.orgs = [{"name": "analytical-engines"}, {"name": "difference-engines"}]
        oauth.refresh_margin = 40 * 86400.0  # longer than the token lives: every request refreshes
        for _ in range(2):
            me = await browser.client.get("/me")
            assert me.status_code == 200
            assert me.json()["orgs"] == ["analytical-engines", "difference-engines"]
        oauth.refresh_margin = 0.0
        before = hub.oauth.refresh_requests
        me = await browser.client.get("/me")  # from the session, no refresh
        assert me.json()["orgs"] == ["analytical-engines", "difference-engines"]
        assert hub.oauth.refresh_requests == before


async def test_a_profile_unread_after_a_refresh_is_read_at_the_next_request(
    hub: FakeHub, make_oauth, ada: FakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh rotated the refresh token: its answer is kept even when the profile cannot
    be read just then, and the profile is read (and the memberships decided) next time."""
    from hub_auth.fastapi import _oauth as oauth_module

    oauth = make_oauth(require_orgs=["analytical-engines"])
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        ada.orgs = []
        read = oauth._userinfo

        async def unreachable(*args: Any) -> dict[str, Any]:
            raise oauth_module._Unavailable("HTTP 502 from /oauth/userinfo")

        monkeypatch.setattr(oauth, "_userinfo", unreachable)
        oauth.refresh_margin = 40 * 86400.0
        before = hub.oauth.refresh_requests
        assert (await browser.client.get("/me")).status_code == 200  # the profile it had
        assert hub.oauth.refresh_requests == before + 1
        oauth.refresh_margin = 0.0  # the new token is fresh: no second refresh
        monkeypatch.setattr(oauth, "_userinfo", read)
        assert (await browser.client.get("/me")).status_code == 403
        assert (await browser.client.get("/me")).status_code == 401
        assert hub.oauth.refresh_requests == before + 1


async def test_on_a_space_every_space_host_over_https_is_the_apps_origin(
    hub: FakeHub, make_oauth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPACE_HOST", "ada-demo.hf.space, demo.example.com")
    app = behind_a_proxy(app_with_a_post_route(make_oauth()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PROXIED) as client:

        async def post(origin: str) -> int:
            response = await client.post("/delete-everything", headers={"Origin": origin})
            return response.status_code

        # Not refused as cross-site: 401, nobody is signed in.
        assert await post("https://ada-demo.hf.space") == 401
        assert await post("https://demo.example.com") == 401
        assert await post("http://ada-demo.hf.space") == 403
        assert await post("https://evil.hf.space") == 403
        assert await post("http://10.0.0.5:7860") == 403
