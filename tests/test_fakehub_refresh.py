"""FakeHub's refresh-token grant and its controls, spoken to over HTTP as a client would."""

from __future__ import annotations

from typing import Any

import aiohttp

from hub_auth.testing import FakeHub, FakeUser

CLIENT_ID = "26be6b09-91c5-47da-9861-d2d2bb7a7e36"


async def post(hub: FakeHub, **form: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{hub.url}/oauth/token", data=form) as response,
    ):
        return response.status, await response.json()


async def whoami_status(hub: FakeHub, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{hub.url}/api/whoami-v2", headers=headers) as response,
    ):
        return response.status


def refresh(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}


async def test_refresh_rotates_and_a_spent_refresh_token_is_invalid(fake_hub: FakeHub) -> None:
    login = fake_hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=60)
    assert set(login) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert login["access_token"].startswith("hf_oauth_")
    assert await whoami_status(fake_hub, login["access_token"]) == 200

    status, body = await post(fake_hub, **refresh(login["refresh_token"]))
    assert status == 200
    assert body["refresh_token"] != login["refresh_token"]
    assert body["expires_in"] == 30 * 86400
    assert await whoami_status(fake_hub, body["access_token"]) == 200

    status, spent = await post(fake_hub, **refresh(login["refresh_token"]))
    assert (status, spent["error"]) == (400, "invalid_grant")
    assert fake_hub.oauth.refresh_requests == 2
    assert fake_hub.oauth.live_refresh_tokens == 1


async def test_refresh_controls(fake_hub: FakeHub) -> None:
    login = fake_hub.oauth.issue_login(FakeUser(name="ada", token_name=None))
    fake_hub.oauth.fail_next_refresh(503, count=2)
    for _ in range(2):
        status, body = await post(fake_hub, **refresh(login["refresh_token"]))
        assert status == 503
    status, body = await post(fake_hub, **refresh(login["refresh_token"]))
    assert status == 200  # a failed attempt does not spend the refresh token

    fake_hub.oauth.revoke_refresh_token(body["refresh_token"])
    status, body = await post(fake_hub, **refresh(body["refresh_token"]))
    assert (status, body["error"]) == (400, "invalid_grant")

    status, body = await post(fake_hub, grant_type="refresh_token", refresh_token="x")
    assert (status, body["error"]) == (400, "invalid_request")  # no client_id
    assert fake_hub.oauth.token_requests == ["refresh_token"] * 5
