"""HubOAuth's own HTTP client (no HubAuth to borrow) used from a loop per request, as a
``TestClient`` without ``with`` does: a client whose loop is gone leaves no open session or
socket behind (they were "Unclosed client session" warnings at interpreter exit)."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

import hub_auth._http
from hub_auth.fastapi import HubOAuth
from hub_auth.testing import FakeHub, FakeUser
from tests.oauth_browser import make_app


def _sign_in(client: TestClient, hub: FakeHub) -> None:
    """The whole flow: the app's requests on the test client, the Hub's over real HTTP."""
    authorize = client.get("/oauth/huggingface/login", follow_redirects=False)
    consent = httpx.get(authorize.headers["location"])
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text)
    assert request_id is not None, consent.text
    decided = httpx.post(
        f"{hub.url}/oauth/authorize",
        data={"request_id": request_id.group(1), "decision": "approve"},
    )
    assert decided.status_code == 302
    back = httpx.URL(decided.headers["location"])
    client.get(f"{back.path}?{back.query.decode()}", follow_redirects=False)


def _signed_in_twice(hub: FakeHub) -> None:
    hub.oauth.browser_user = FakeUser(name="ada-lovelace")
    registered = hub.oauth.register_app(client_secret="s3cret")
    oauth = HubOAuth(client_id=registered.client_id, client_secret="s3cret", provider_url=hub.url)
    client = TestClient(make_app(oauth), base_url="http://127.0.0.1:8000")  # no `with`
    for _ in range(2):  # each request runs on a new event loop, in a new thread
        _sign_in(client, hub)
        # The provider's token and userinfo answers reached the app: the user is signed in.
        assert client.get("/me").json()["username"] == "ada-lovelace"


def test_a_loop_per_request_sets_no_session_aside(fake_hub: FakeHub) -> None:
    """Sessions set aside (as after a fork) stay open until interpreter exit; a loop per
    request must not add to them."""
    set_aside = len(hub_auth._http._LEFT_TO_THE_PARENT)
    _signed_in_twice(fake_hub)
    assert len(hub_auth._http._LEFT_TO_THE_PARENT) == set_aside
