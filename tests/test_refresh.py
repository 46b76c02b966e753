"""Automatic refresh of stored OAuth tokens, against FakeHub's refresh-token grant.

Each test stores a browser login as huggingface_hub does (an ``oauth-<user>`` entry with
``hf_token``, ``refresh_token`` and ``expires_at``; the token file made active) and counts
the refresh requests that reach FakeHub.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from hub_auth import Err, HubAuth, Ok
from hub_auth._login.store import TokenStore
from hub_auth._oauth import DEFAULT_CLIENT_ID
from hub_auth._oauth import refresh as refresh_module
from hub_auth._oauth.refresh import EXPIRED_LOGIN_WARNING, StoredTokenRefresher
from hub_auth._result import Result
from hub_auth.sync import HubAuthSync
from hub_auth.testing import FakeHub, FakeUser, make_token

HOUR = 3600
DAY = 24 * HOUR
NAME = "oauth-ada"


@pytest.fixture(autouse=True)
def _default_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", raising=False)


def store_login(
    hub: FakeHub, store: TokenStore, *, lifetime: float, name: str = NAME
) -> dict[str, Any]:
    """A stored browser login whose access token lives ``lifetime`` more seconds."""
    answer = hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=lifetime)
    store.save(
        name,
        answer["access_token"],
        extra={
            "refresh_token": answer["refresh_token"],
            "expires_at": str(int(time.time()) + answer["expires_in"]),
            "hub_auth_endpoint": hub.url,  # refreshed only at the Hub that issued it
        },
    ).unwrap()
    return answer


def entry(store: TokenStore, name: str = NAME) -> dict[str, str]:
    return store.read_entries().unwrap()[name]


def active(store: TokenStore) -> str | None:
    return store.read_active().unwrap()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("hub_auth") and r.levelno >= logging.WARNING
    ]


async def test_near_expiry_token_is_refreshed_once(fake_hub: FakeHub, store: TokenStore) -> None:
    login = store_login(fake_hub, store, lifetime=2 * HOUR)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "ada"
        assert fake_hub.oauth.refresh_requests == 1
        new = entry(store)
        assert new["hf_token"] != login["access_token"]
        assert new["refresh_token"] != login["refresh_token"]  # rotated, and kept
        assert abs(int(new["expires_at"]) - (time.time() + 30 * DAY)) < 60
        assert active(store) == new["hf_token"]
        assert (await auth.get_token()).unwrap().get_secret_value() == new["hf_token"]
        assert (await auth.auth_headers()).unwrap() == [
            ("authorization", f"Bearer {new['hf_token']}")
        ]
        assert (await auth.whoami()).unwrap().username == "ada"
    async with HubAuth(endpoint=fake_hub.url) as other:  # a later process, as it were
        assert (await other.get_token()).unwrap().get_secret_value() == new["hf_token"]
    assert fake_hub.oauth.refresh_requests == 1
    assert fake_hub.oauth.token_requests == ["refresh_token"]


async def test_an_absurd_expires_in_is_stored_as_at_most_a_year(
    fake_hub: FakeHub, store: TokenStore
) -> None:
    store_login(fake_hub, store, lifetime=2 * HOUR)
    fake_hub.oauth.access_token_lifetime = 1e12  # "year 33715"
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "ada"
    assert fake_hub.oauth.refresh_requests == 1
    assert abs(int(entry(store)["expires_at"]) - (time.time() + 365 * DAY)) < 60
    assert (store.list_tokens().unwrap())[0].expires_at is not None  # still a date


async def test_far_from_expiry_is_not_refreshed(fake_hub: FakeHub, store: TokenStore) -> None:
    login = store_login(fake_hub, store, lifetime=DAY + HOUR)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        for _ in range(3):
            assert (await auth.whoami()).unwrap().username == "ada"
    assert fake_hub.oauth.refresh_requests == 0
    assert entry(store)["hf_token"] == login["access_token"] == active(store)


async def test_entries_that_are_not_refreshable_are_left_alone(
    fake_hub: FakeHub, store: TokenStore
) -> None:
    soon = str(int(time.time()) + HOUR)
    classic = fake_hub.add_token(name="bob")
    store.save("no-refresh-token", classic, extra={"expires_at": soon}).unwrap()
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "bob"
        other = fake_hub.add_token(name="carol")
        store.save("non-integer-expiry", other, extra={"expires_at": "soon", "refresh_token": "r"})
        assert (await auth.whoami()).unwrap().username == "carol"
    assert fake_hub.oauth.token_requests == []


async def test_rotated_refresh_token_works_for_the_next_refresh(
    fake_hub: FakeHub, store: TokenStore
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        await auth.get_token()
    first = entry(store)
    # The spent refresh token is dead; only the rotated one is live.
    assert fake_hub.oauth.live_refresh_tokens == 1
    assert first["refresh_token"] != login["refresh_token"]
    # Make the refreshed token due again: the next refresh must use the rotated one.
    due = {**first, "expires_at": "100"}
    del due["hf_token"]
    store.save(NAME, first["hf_token"], extra=due).unwrap()
    async with HubAuth(endpoint=fake_hub.url) as auth:
        second = (await auth.get_token()).unwrap().get_secret_value()
    assert second not in (first["hf_token"], login["access_token"])
    assert fake_hub.oauth.refresh_requests == 2
    assert entry(store)["hf_token"] == second == active(store)


async def test_token_file_rewritten_only_if_it_still_held_the_old_token(
    fake_hub: FakeHub, store: TokenStore
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    elsewhere = make_token("switched-meanwhile")
    fake_hub.oauth.refresh_delay = 0.5
    async with HubAuth(endpoint=fake_hub.url) as auth:
        call = asyncio.ensure_future(auth.get_token())
        for _ in range(400):  # until the request has reached FakeHub (which holds it)
            if fake_hub.oauth.refresh_requests:
                break
            await asyncio.sleep(0.01)
        # Another tool switches the active token (without the lock) during the request.
        store.token_path.write_text(elsewhere)
        got = (await call).unwrap().get_secret_value()
    refreshed = entry(store)["hf_token"]
    assert got == refreshed != login["access_token"]
    assert active(store) == elsewhere  # not overwritten with the refreshed token


def test_refresh_entry_rewrites_the_token_file_only_when_it_held_the_old_token(
    store: TokenStore,
) -> None:
    old, new, other = make_token("old"), make_token("new"), make_token("other")
    store.save(NAME, old, extra={"refresh_token": "r1", "expires_at": "100", "x": "kept"})
    store.save("work", other).unwrap()  # the active token is another one
    renewed = {"hf_token": new, "refresh_token": "r2", "expires_at": "200"}
    assert store.refresh_entry(NAME, old, lambda fields: Ok(dict(renewed))).unwrap() == new
    assert entry(store) == {**renewed, "x": "kept"}
    assert active(store) == other

    # The entry changed meanwhile (another process refreshed): its token, no renew.
    def must_not_run(fields: Any) -> Result[dict[str, str]]:
        raise AssertionError("renewed although another process had refreshed")

    assert store.refresh_entry(NAME, old, must_not_run).unwrap() == new


async def test_thousand_concurrent_calls_make_one_refresh_request(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_login(fake_hub, store, lifetime=HOUR)
    seen: list[bool] = []
    monkeypatch.setattr(TokenStore, "refresh_entry", in_a_worker(seen))
    fake_hub.oauth.refresh_delay = 0.2  # all of them arrive while it is in flight
    async with HubAuth(endpoint=fake_hub.url) as auth:
        calls = [auth.whoami() if i % 2 else auth.get_token() for i in range(1000)]
        results = await asyncio.gather(*calls)
    assert fake_hub.oauth.refresh_requests == 1
    assert seen == [True]  # one refresh in this process: the lock was taken once, not 1,000 times
    refreshed = entry(store)["hf_token"]
    tokens = {r.unwrap().get_secret_value() for r in results[::2]}
    assert tokens == {refreshed}
    assert {r.unwrap().username for r in results[1::2]} == {"ada"}


async def test_invalid_grant_warns_once_and_goes_on_with_the_old_token(
    fake_hub: FakeHub, store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    fake_hub.oauth.revoke_refresh_token(login["refresh_token"])
    async with HubAuth(endpoint=fake_hub.url) as auth:
        for _ in range(3):
            assert (await auth.whoami()).unwrap().username == "ada"  # the old token still works
            got = (await auth.get_token()).unwrap().get_secret_value()
            assert got == login["access_token"]
    async with HubAuth(endpoint=fake_hub.url) as again:  # same process: no second try
        assert (await again.get_token()).unwrap().get_secret_value() == login["access_token"]
    assert fake_hub.oauth.refresh_requests == 1
    warned = warnings_of(caplog)
    assert len(warned) == 1
    assert EXPIRED_LOGIN_WARNING in warned[0].getMessage()
    assert NAME in warned[0].getMessage()
    assert entry(store)["hf_token"] == login["access_token"] == active(store)


async def test_server_error_goes_on_with_the_old_token_and_retries_later(
    fake_hub: FakeHub,
    store: TokenStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 300 s in production; shortened so that "later" comes within the test.
    monkeypatch.setattr(refresh_module, "RECHECK_INTERVAL", 1.0)
    login = store_login(fake_hub, store, lifetime=HOUR)
    fake_hub.oauth.fail_next_refresh(503, count=2)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "ada"
        for _ in range(5):  # not retried on every call
            got = (await auth.get_token()).unwrap().get_secret_value()
            assert got == login["access_token"]
        assert fake_hub.oauth.refresh_requests == 1
        assert len(warnings_of(caplog)) == 1
        assert "503" in warnings_of(caplog)[0].getMessage()

        await asyncio.sleep(1.1)
        assert (await auth.get_token()).unwrap().get_secret_value() == login["access_token"]
        assert fake_hub.oauth.refresh_requests == 2  # the second injected 503
        assert len(warnings_of(caplog)) == 1  # warned once, not on every failure

        await asyncio.sleep(1.1)
        refreshed = (await auth.get_token()).unwrap().get_secret_value()
    assert fake_hub.oauth.refresh_requests == 3
    assert refreshed == entry(store)["hf_token"] != login["access_token"]


async def test_environment_and_explicit_tokens_are_never_refreshed(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    token = login["access_token"]
    monkeypatch.setenv("HF_TOKEN", token)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "ada"
        assert (await auth.get_token()).unwrap().get_secret_value() == token
    monkeypatch.delenv("HF_TOKEN")
    async with HubAuth(endpoint=fake_hub.url, token=token) as auth:
        assert (await auth.get_token()).unwrap().get_secret_value() == token
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami(token)).unwrap().username == "ada"
        await auth.set_token(token)
        assert (await auth.get_token()).unwrap().get_secret_value() == token
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.get_token()).unwrap().get_secret_value() == token
    assert fake_hub.oauth.token_requests == []
    assert entry(store)["hf_token"] == token == active(store)


async def test_client_id_comes_from_the_environment(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_login(fake_hub, store, lifetime=HOUR)
    monkeypatch.setenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", "staging-client")
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert auth._refresher._client_id == "staging-client"
    async with HubAuth(endpoint=fake_hub.url, read_env=False, hf_home=store.token_path.parent) as a:
        assert a._refresher._client_id == DEFAULT_CLIENT_ID
        await a.get_token()
    assert fake_hub.oauth.refresh_requests == 1


def in_a_worker(seen: list[bool]) -> Any:
    """A spy on ``TokenStore.refresh_entry`` noting whether it ran outside any event loop."""
    original = TokenStore.refresh_entry

    def spy(self: TokenStore, *args: Any, **kwargs: Any) -> Result[str]:
        try:
            asyncio.get_running_loop()
            seen.append(False)
        except RuntimeError:
            seen.append(threading.current_thread() is not threading.main_thread())
        return original(self, *args, **kwargs)

    return spy


def test_sync_facade_refreshes_in_a_worker_thread(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    seen: list[bool] = []
    monkeypatch.setattr(TokenStore, "refresh_entry", in_a_worker(seen))
    with HubAuthSync(endpoint=fake_hub.url) as auth:
        got = auth.get_token().unwrap().get_secret_value()
        assert auth.whoami().unwrap().username == "ada"
    assert got == entry(store)["hf_token"] != login["access_token"]
    assert seen == [True]
    assert fake_hub.oauth.refresh_requests == 1


async def test_lock_is_taken_in_a_worker_thread(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_login(fake_hub, store, lifetime=HOUR)
    seen: list[bool] = []
    monkeypatch.setattr(TokenStore, "refresh_entry", in_a_worker(seen))
    async with HubAuth(endpoint=fake_hub.url) as auth:
        await auth.get_token()
    assert seen == [True]  # not on the event loop's thread


async def test_no_refresh_token_in_repr_logs_or_errors(
    fake_hub: FakeHub, store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    login = store_login(fake_hub, store, lifetime=HOUR)
    fake_hub.oauth.fail_next_refresh(500)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        await auth.get_token()
        texts = [repr(auth), repr(auth._refresher), repr(auth._refresher._decisions)]
        auth._refresher._decisions.clear()
        await auth.get_token()
        texts.append(repr(auth._refresher._decisions))
    texts.append(repr(store.read_entries()))
    texts.extend(record.getMessage() for record in caplog.records)
    refreshed = entry(store)
    for text in texts:
        for secret in (login["refresh_token"], refreshed["refresh_token"], refreshed["hf_token"]):
            assert secret not in text


async def test_failed_refresh_answers_are_mapped(fake_hub: FakeHub, store: TokenStore) -> None:
    refresher = StoredTokenRefresher  # the interpretation of odd answers, through FakeHub
    login = store_login(fake_hub, store, lifetime=HOUR)
    fake_hub.oauth.fail_next_refresh(400)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        renewed = await auth._refresher._renew(entry(store))
    assert isinstance(auth._refresher, refresher)
    assert isinstance(renewed, Err)
    assert renewed.error.kind == "bad_response"
    assert login["refresh_token"] not in str(renewed.error)


@pytest.mark.parametrize(("status", "error"), [(500, "server_error"), (400, "invalid_grant")])
async def test_a_hub_echoing_the_refresh_token_does_not_leak_it(
    store: TokenStore, caplog: pytest.LogCaptureFixture, status: int, error: str
) -> None:
    from aiohttp import web

    from tests import secret_guard

    refresh_token = "rt-" + make_token("echoed")[3:]  # not token-shaped: only the guard knows it
    secret_guard.register_token(refresh_token)

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        said = f"cannot use {form['refresh_token']}"
        return web.json_response({"error": error, "error_description": said}, status=status)

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    access = make_token("echo-access")
    soon = str(int(time.time()) + HOUR)
    endpoint = f"http://127.0.0.1:{port}"
    extra = {"refresh_token": refresh_token, "expires_at": soon, "hub_auth_endpoint": endpoint}
    store.save(NAME, access, extra=extra).unwrap()
    try:
        async with HubAuth(endpoint=endpoint) as auth:
            assert (await auth.get_token()).unwrap().get_secret_value() == access
    finally:
        await runner.cleanup()
    warned = warnings_of(caplog)
    assert len(warned) == 1
    assert "****" in warned[0].getMessage()
    assert refresh_token not in warned[0].getMessage()
