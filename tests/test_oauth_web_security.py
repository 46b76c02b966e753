"""HubOAuth's web side (issue 21, third pass): cross-site requests, memberships after a
refresh, the login route's ``next``, a POST logout, ``__Host-`` cookies, ``expires_in`` and
the WebSocket Origin check. Driven through a real app against FakeHub (in process, httpx);
the browser-level cross-site form post is in ``test_signin_browser.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI

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
    registered = hub.oauth.register_app(client_secret="s3cret", scopes=["read-memberships"])

    def make(**options: Any) -> HubOAuth:
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

    @app.post("/delete-everything")
    async def delete(info: Annotated[OAuthInfo, Depends(oauth.user)]) -> dict[str, str]:
        return {"deleted_by": info.user.username}

    @app.delete("/things")
    async def delete_things(
        info: Annotated[OAuthInfo | None, Depends(oauth.optional_user)],
    ) -> dict[str, str | None]:
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
