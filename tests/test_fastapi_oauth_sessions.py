"""HubOAuth sessions: refresh (once under load, refused, failing), Redis, organisations."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper

from hub_auth.fastapi import HubOAuth, MemorySessionStore, RedisSessionStore
from hub_auth.testing import FakeHub, FakeUser
from tests.oauth_browser import Browser, make_app

SESSION_SECRET = "test-session-secret-" + "0123456789abcdefghijklmnop"

ADA = FakeUser(name="ada-lovelace", orgs=[{"name": "analytical-engines", "role_in_org": "admin"}])


pytestmark = pytest.mark.usefixtures("close_oauth_clients")


@pytest.fixture(autouse=True)
def no_space_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.oauth.browser_user = ADA
    return hub


def make_oauth(hub: FakeHub, **options) -> HubOAuth:
    app = hub.oauth.register_app(client_secret="s3cret", scopes=["read-memberships"])
    return HubOAuth(
        client_id=app.client_id,
        client_secret="s3cret",
        scopes="openid profile read-memberships",
        provider_url=hub.url,
        **options,
    )


async def signed_in_close_to_expiry(hub: FakeHub, browser: Browser) -> str:
    """Sign in with a 2 s access token, wait until it is within the 1 s refresh margin."""
    hub.oauth.access_token_lifetime = 2.0
    await browser.sign_in()
    first = (await browser.client.get("/me")).json()["token"]
    await asyncio.sleep(1.1)
    hub.oauth.access_token_lifetime = 3600.0
    return first


async def test_refresh_happens_once_under_50_concurrent_requests(hub: FakeHub) -> None:
    oauth = make_oauth(hub, refresh_margin=1.0)
    async with Browser(make_app(oauth), hub) as browser:
        first = await signed_in_close_to_expiry(hub, browser)
        hub.oauth.refresh_delay = 0.2  # the refresh is slow: every request arrives meanwhile
        answers = await asyncio.gather(*(browser.client.get("/me") for _ in range(50)))
        assert [answer.status_code for answer in answers] == [200] * 50
        tokens = {answer.json()["token"] for answer in answers}
        assert hub.oauth.refresh_requests == 1
        (fresh,) = tokens
        assert fresh != first
        whoami = await browser.client.get(
            f"{hub.url}/api/whoami-v2", headers={"Authorization": f"Bearer {fresh}"}
        )
        assert whoami.status_code == 200
        # Fresh now: later requests do not refresh again.
        assert (await browser.client.get("/me")).status_code == 200
        assert hub.oauth.refresh_requests == 1


async def test_refused_refresh_ends_the_session(hub: FakeHub) -> None:
    store = MemorySessionStore()
    oauth = make_oauth(hub, refresh_margin=1.0, session_store=store)
    async with Browser(make_app(oauth), hub) as browser:
        await signed_in_close_to_expiry(hub, browser)
        for refresh_token in list(hub.oauth._refresh_tokens):
            hub.oauth.revoke_refresh_token(refresh_token)
        assert (await browser.client.get("/me")).status_code == 401
        assert len(store) == 0
        assert hub.oauth.refresh_requests == 1


# 429 and 408 say "not now": a rate-limited refresh must not sign the user out.
@pytest.mark.parametrize("status", [503, 429, 408])
async def test_failing_refresh_keeps_a_valid_token_but_never_serves_an_expired_one(
    hub: FakeHub, status: int
) -> None:
    oauth = make_oauth(hub, refresh_margin=1.0)
    async with Browser(make_app(oauth), hub) as browser:
        first = await signed_in_close_to_expiry(hub, browser)
        hub.oauth.fail_next_refresh(status, count=2)
        still = await browser.client.get("/me")
        assert still.status_code == 200
        assert still.json()["token"] == first  # not expired yet: served
        await asyncio.sleep(1.0)  # now expired
        expired = await browser.client.get("/me")
        assert expired.status_code == 503
        assert "Retry-After" in expired.headers
        renewed = await browser.client.get("/me")  # the Hub is back
        assert renewed.status_code == 200
        assert renewed.json()["token"] != first


async def test_require_orgs(hub: FakeHub) -> None:
    member = make_oauth(hub, require_orgs=["analytical-engines"])
    outsider = make_oauth(hub, require_orgs=["difference-engines"])
    async with Browser(make_app(member), hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).status_code == 200
    async with Browser(make_app(outsider), hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).status_code == 403


async def test_org_id_is_passed_to_the_provider(hub: FakeHub) -> None:
    oauth = make_oauth(hub, org_id="0123456789abcdef01234567")
    async with Browser(make_app(oauth), hub) as browser:
        response = await browser.client.get("/oauth/huggingface/login", follow_redirects=False)
        assert "orgIds=0123456789abcdef01234567" in response.headers["Location"]
        home = await browser.client.get("/oauth/huggingface/login")  # not a member
        assert home.json() == {
            "user": None,
            "error": "Sign-in with Hugging Face was cancelled: access was not granted.",
        }


async def test_two_app_instances_on_one_redis_share_sessions(
    hub: FakeHub, redis_server: redis_helper.RedisServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        registered = hub.oauth.register_app(client_secret="s3cret")

        def replica() -> HubOAuth:
            return HubOAuth(
                client_id=registered.client_id,
                client_secret="s3cret",
                provider_url=hub.url,
                session_store=RedisSessionStore(client, secret=SESSION_SECRET),
            )

        async with (
            Browser(make_app(replica()), hub) as first,
            Browser(make_app(replica()), hub) as second,
        ):
            await first.sign_in()
            cookie = first.cookie()
            assert cookie is not None
            second.client.cookies.set("hub_oauth_session", cookie)
            assert (await second.client.get("/me")).json()["username"] == "ada-lovelace"
            keys = [key.decode() async for key in client.scan_iter("hub_auth:session:*")]
            assert len(keys) == 1
            assert cookie not in keys[0]  # Redis holds a hash of the id, not the cookie
            assert 0 < await client.ttl(keys[0]) <= 7 * 86400
            await second.client.post("/oauth/huggingface/logout")
            assert (await first.client.get("/me")).status_code == 401
    finally:
        await client.aclose()


async def test_replicas_on_one_redis_refresh_a_session_once(
    hub: FakeHub, redis_server: redis_helper.RedisServer
) -> None:
    """The provider rotates refresh tokens: a second refresh by another replica would be
    refused and end the session, so the replicas take a Redis lock around it."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        registered = hub.oauth.register_app(client_secret="s3cret")

        def replica() -> HubOAuth:
            return HubOAuth(
                client_id=registered.client_id,
                client_secret="s3cret",
                provider_url=hub.url,
                session_store=RedisSessionStore(client, secret=SESSION_SECRET),
                refresh_margin=1.0,
            )

        async with (
            Browser(make_app(replica()), hub) as first,
            Browser(make_app(replica()), hub) as second,
        ):
            await signed_in_close_to_expiry(hub, first)
            cookie = first.cookie()
            assert cookie is not None
            second.client.cookies.set("hub_oauth_session", cookie)
            hub.oauth.refresh_delay = 0.3
            answers = await asyncio.gather(
                *(browser.client.get("/me") for browser in [first, second] * 10)
            )
            assert [answer.status_code for answer in answers] == [200] * 20
            assert len({answer.json()["token"] for answer in answers}) == 1
            assert hub.oauth.refresh_requests == 1
    finally:
        await client.aclose()


async def test_sessions_end_after_their_lifetime_despite_refreshes(hub: FakeHub) -> None:
    store = MemorySessionStore()
    oauth = make_oauth(hub, session_store=store, session_lifetime=1.5)
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).status_code == 200
        await asyncio.sleep(1.6)
        assert (await browser.client.get("/me")).status_code == 401
        assert len(store) == 0


async def test_signing_in_again_replaces_the_old_session(hub: FakeHub) -> None:
    store = MemorySessionStore()
    oauth = make_oauth(hub, session_store=store)
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        old = browser.cookie()
        await browser.sign_in()
        assert browser.cookie() not in (None, old)
        assert len(store) == 1
        browser.client.cookies.set("hub_oauth_session", old)
        assert (await browser.client.get("/me")).status_code == 401


async def test_anonymous_login_visits_never_push_signed_in_users_out(hub: FakeHub) -> None:
    store = MemorySessionStore(max_sessions=5, max_pending_logins=5)
    oauth = make_oauth(hub, session_store=store)
    app = make_app(oauth)
    async with Browser(app, hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).status_code == 200
        async with Browser(app, hub) as stranger:
            for _ in range(20):  # four times both bounds, no cookies kept
                stranger.client.cookies.clear()
                started = await stranger.client.get(
                    "/oauth/huggingface/login", follow_redirects=False
                )
                assert started.status_code == 302
        assert (await browser.client.get("/me")).status_code == 200  # still signed in
        assert len(store) == 1
