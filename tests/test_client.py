"""HubAuth against FakeHub over real sockets: every operation and every error kind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, LoginInfo, Ok, UserInfo
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("ada")
OTHER = make_token("charles")


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(
        TOKEN,
        FakeUser(
            name="ada-lovelace",
            email="ada@example.com",
            orgs=["analytical-engines"],
            token_name="ada-workstation",
            role="write",
        ),
    )
    hub.add_token(OTHER, FakeUser(name="charles-b", token_name=None, role="read"))
    return hub


@pytest.fixture
async def auth(hub: FakeHub, hf_home: Path) -> AsyncIterator[HubAuth]:
    async with HubAuth(endpoint=hub.url, retry_budget=5.0) as client:
        yield client


# -- get_token / set_token ---------------------------------------------------------------------


async def test_get_token_order(
    hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(f"  {make_token('file')}\n")
    async with HubAuth(endpoint=hub.url) as auth:
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("file")
        monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", make_token("legacy"))
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("legacy")
        monkeypatch.setenv("HF_TOKEN", make_token("env"))
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("env")
        monkeypatch.setenv("HF_TOKEN", "   ")  # empty counts as none
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("legacy")
        assert await auth.set_token(make_token("set")) == Ok(None)
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("set")
    async with HubAuth(endpoint=hub.url, token=make_token("ctor")) as auth:
        assert (await auth.get_token()).unwrap().get_secret_value() == make_token("ctor")


async def test_get_token_returns_secret(auth: HubAuth) -> None:
    await auth.set_token(TOKEN)
    result = await auth.get_token()
    assert isinstance(result.unwrap(), SecretStr)
    assert TOKEN not in repr(result) and TOKEN not in str(result.unwrap())


async def test_no_token(auth: HubAuth) -> None:
    match await auth.get_token():
        case Err(error):
            assert error.kind is ErrorKind.NO_TOKEN
        case other:
            pytest.fail(f"expected no_token, got {other!r}")


async def test_read_env_false_ignores_hf_token(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    async with HubAuth(endpoint=hub.url, read_env=False, hf_home=tmp_path / "x") as auth:
        assert (await auth.get_token()).error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


async def test_set_token_rejects_bad_format_and_keeps_old(auth: HubAuth) -> None:
    await auth.set_token(TOKEN)
    result = await auth.set_token("hf_bad\r\ninjected: 1")
    assert isinstance(result, Err) and result.error.kind is ErrorKind.INVALID_TOKEN
    assert (await auth.get_token()).unwrap().get_secret_value() == TOKEN


async def test_set_token_never_writes(auth: HubAuth, hf_home: Path) -> None:
    await auth.set_token(TOKEN)
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()


async def test_token_file_unreadable_is_storage_error(hub: FakeHub, hf_home: Path) -> None:
    (hf_home / "token").mkdir(parents=True)  # a folder where the file should be
    async with HubAuth(endpoint=hub.url) as auth:
        result = await auth.get_token()
        assert isinstance(result, Err) and result.error.kind is ErrorKind.STORAGE
        assert str(hf_home / "token") in result.error.message


# -- whoami -------------------------------------------------------------------------------------


async def test_whoami_ok(auth: HubAuth, hub: FakeHub) -> None:
    match await auth.whoami(TOKEN):
        case Ok(user):
            assert isinstance(user, UserInfo)
            assert user.username == "ada-lovelace"
            assert user.email == "ada@example.com"
            assert user.organizations == ("analytical-engines",)
            assert user.token is not None and user.token.display_name == "ada-workstation"
        case Err(error):
            pytest.fail(str(error))
    seen = hub.requests[-1]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "hub_auth" in seen.headers["User-Agent"]


async def test_whoami_uses_resolved_token(auth: HubAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", OTHER)
    assert (await auth.whoami()).unwrap().username == "charles-b"
    assert (await auth.whoami(SecretStr(TOKEN))).unwrap().username == "ada-lovelace"


async def test_whoami_without_token_makes_no_request(auth: HubAuth, hub: FakeHub) -> None:
    result = await auth.whoami()
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NO_TOKEN
    assert hub.request_count == 0


async def test_whoami_malformed_token_makes_no_request(auth: HubAuth, hub: FakeHub) -> None:
    result = await auth.whoami("hf_abc\ndef")
    assert isinstance(result, Err) and result.error.kind is ErrorKind.INVALID_TOKEN
    assert hub.request_count == 0


async def test_whoami_offline(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    async with HubAuth(endpoint=hub.url) as auth:
        result = await auth.whoami(TOKEN)
        assert isinstance(result, Err) and result.error.kind is ErrorKind.OFFLINE
        login = await auth.login(TOKEN)
        assert isinstance(login, Err) and login.error.kind is ErrorKind.OFFLINE
    assert hub.request_count == 0
    async with HubAuth(endpoint=hub.url, read_env=False) as auth:  # ignores HF_HUB_OFFLINE
        assert (await auth.whoami(TOKEN)).is_ok()


async def test_whoami_unauthorized_keeps_request_id_and_hub_text(
    auth: HubAuth, hub: FakeHub
) -> None:
    result = await auth.whoami(make_token("unknown"))
    assert isinstance(result, Err)
    error = result.error
    assert error.kind is ErrorKind.UNAUTHORIZED
    assert error.status == 401
    assert error.request_id == hub.requests[-1].request_id
    assert "Invalid credentials in Authorization header" in error.message


async def test_whoami_revoked_then_forbidden(auth: HubAuth, hub: FakeHub) -> None:
    hub.revoke(TOKEN)
    assert (await auth.whoami(TOKEN)).error.kind is ErrorKind.UNAUTHORIZED  # type: ignore[union-attr]
    hub.forbid(OTHER)
    result = await auth.whoami(OTHER)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.FORBIDDEN
    assert result.error.status == 403


@pytest.mark.parametrize(
    ("retry_after", "reset", "expected"),
    [(7, 120, 7.0), (None, 42, 42.0)],
)
async def test_whoami_rate_limited(
    hub: FakeHub, retry_after: int | None, reset: int, expected: float
) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.rate_limit_next(retry_after=retry_after, reset=reset)
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.RATE_LIMITED
    assert result.error.retry_after == pytest.approx(expected, abs=1)
    assert result.error.request_id


async def test_whoami_rate_limit_longer_than_budget_returns_at_once(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=5, retry_budget=2.0) as auth:
        hub.rate_limit_next(retry_after=60)
        started = time.monotonic()
        result = await auth.whoami(TOKEN)
    assert time.monotonic() - started < 1.0
    assert isinstance(result, Err) and result.error.retry_after == pytest.approx(60, abs=1)
    assert hub.request_count == 1


async def test_whoami_server_error_then_retry_succeeds(auth: HubAuth, hub: FakeHub) -> None:
    hub.fail_next(503, count=2)
    assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"
    assert hub.request_count == 3


async def test_whoami_server_error(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url) as auth:
        hub.fail_next(500, body='{"error": "boom"}')
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.SERVER_ERROR
    assert result.error.status == 500 and "boom" in result.error.message
    assert hub.request_count == 1  # 500 is not retried


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"<html>hi</html>", "text/html"),
        (b"[1, 2]", "application/json"),
        (b'{"type": "user"}', "application/json"),
    ],
)
async def test_whoami_bad_response(
    auth: HubAuth, hub: FakeHub, body: bytes, content_type: str
) -> None:
    hub.malformed_next(body=body, content_type=content_type)
    result = await auth.whoami(TOKEN)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.BAD_RESPONSE


async def test_whoami_network_error(hf_home: Path) -> None:
    # A port nothing listens on: bind, read the port, close.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with HubAuth(endpoint=f"http://127.0.0.1:{port}", retry_budget=1.0) as auth:
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NETWORK


async def test_whoami_dropped_connection_is_network(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.drop_next(2)  # aiohttp itself retries an idempotent GET once after a disconnect
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NETWORK


async def test_whoami_timeout(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, timeout=0.3) as auth:
        hub.delay_next(2.0)
        started = time.monotonic()
        result = await auth.whoami(TOKEN)
    assert time.monotonic() - started < 1.5
    assert isinstance(result, Err) and result.error.kind is ErrorKind.TIMEOUT


async def test_redirect_to_other_host_never_carries_token(auth: HubAuth, hub: FakeHub) -> None:
    async with FakeHub() as other:
        hub.redirect_next(f"{other.url.replace('127.0.0.1', 'localhost')}/api/whoami-v2")
        result = await auth.whoami(TOKEN)
        assert isinstance(result, Err) and result.error.kind is ErrorKind.BAD_RESPONSE
        assert other.request_count == 0


async def test_same_host_redirect_is_followed(auth: HubAuth, hub: FakeHub) -> None:
    hub.redirect_next(f"{hub.url}/api/whoami-v2")
    assert (await auth.whoami(TOKEN)).unwrap().username == "ada-lovelace"


# -- auth_headers / validate_token --------------------------------------------------------------


async def test_auth_headers(auth: HubAuth) -> None:
    assert (await auth.auth_headers()).error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]
    await auth.set_token(TOKEN)
    assert await auth.auth_headers() == Ok([("authorization", f"Bearer {TOKEN}")])
    assert await auth.auth_headers(OTHER) == Ok([("authorization", f"Bearer {OTHER}")])


async def test_auth_headers_refuses_injection_from_env(
    auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefgh\tevil:1")
    result = await auth.auth_headers()
    assert isinstance(result, Err) and result.error.kind is ErrorKind.INVALID_TOKEN


async def test_validate_token(auth: HubAuth, hub: FakeHub) -> None:
    assert await auth.validate_token(TOKEN) == Ok(None)
    bad_format = await auth.validate_token("bad_token")
    assert isinstance(bad_format, Err) and bad_format.error.kind is ErrorKind.INVALID_TOKEN
    rejected = await auth.validate_token(make_token("nobody"))
    assert isinstance(rejected, Err) and rejected.error.kind is ErrorKind.INVALID_TOKEN
    assert rejected.error.status == 401
    count = hub.request_count
    assert await auth.validate_token(make_token("nobody"), remote=False) == Ok(None)
    assert hub.request_count == count
    hub.fail_next(500)
    could_not_check = await auth.validate_token(TOKEN)
    assert isinstance(could_not_check, Err)
    assert could_not_check.error.kind is ErrorKind.SERVER_ERROR


# -- login / logout -----------------------------------------------------------------------------


async def test_login_stores_like_huggingface_hub(auth: HubAuth, hf_home: Path) -> None:
    result = await auth.login(TOKEN)
    assert isinstance(result, Ok) and isinstance(result.value, LoginInfo)
    assert result.value.token_name == "ada-workstation"
    assert result.value.user.username == "ada-lovelace"
    assert (hf_home / "token").read_text() == TOKEN
    stored = (hf_home / "stored_tokens").read_text()
    assert "[ada-workstation]" in stored and f"hf_token = {TOKEN}" in stored
    assert (hf_home / "token").stat().st_mode & 0o777 == 0o600
    assert (await auth.get_token()).unwrap().get_secret_value() == TOKEN


async def test_login_oauth_name(auth: HubAuth, hf_home: Path) -> None:
    assert (await auth.login(OTHER)).unwrap().token_name == "oauth-charles-b"


async def test_login_rejected_stores_nothing(auth: HubAuth, hf_home: Path) -> None:
    result = await auth.login(make_token("nobody"))
    assert isinstance(result, Err) and result.error.kind is ErrorKind.UNAUTHORIZED
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()


async def test_login_bad_format(auth: HubAuth, hub: FakeHub) -> None:
    result = await auth.login("nope")
    assert isinstance(result, Err) and result.error.kind is ErrorKind.INVALID_TOKEN
    assert hub.request_count == 0


async def test_login_notes_env_override(auth: HubAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", OTHER)
    info = (await auth.login(TOKEN)).unwrap()
    assert any("HF_TOKEN" in note for note in info.notes)


async def test_logout_all(auth: HubAuth, hf_home: Path) -> None:
    await auth.login(TOKEN)
    await auth.login(OTHER)
    await auth.set_token(TOKEN)
    info = (await auth.logout()).unwrap()
    assert sorted(info.removed) == ["ada-workstation", "oauth-charles-b"]
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()
    assert (await auth.get_token()).error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


async def test_logout_named(auth: HubAuth, hf_home: Path) -> None:
    await auth.login(TOKEN)
    await auth.login(OTHER)  # active now
    info = (await auth.logout("ada-workstation")).unwrap()
    assert info.removed == ("ada-workstation",) and not info.removed_active
    assert (hf_home / "token").read_text() == OTHER
    info = (await auth.logout("oauth-charles-b")).unwrap()
    assert info.removed_active
    assert not (hf_home / "token").exists()


async def test_logout_unknown_name(auth: HubAuth) -> None:
    await auth.login(TOKEN)
    result = await auth.logout("nope")
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NOT_FOUND


async def test_logout_says_env_still_authenticates(
    auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login(TOKEN)
    monkeypatch.setenv("HF_TOKEN", OTHER)
    info = (await auth.logout()).unwrap()
    assert any("HF_TOKEN" in note for note in info.notes)


async def test_list_and_switch(auth: HubAuth, hf_home: Path) -> None:
    await auth.login(TOKEN)
    await auth.login(OTHER)
    listed = (await auth.list_tokens()).unwrap()
    assert [(t.name, t.active) for t in listed] == [
        ("ada-workstation", False),
        ("oauth-charles-b", True),
    ]
    assert all(TOKEN not in t.masked_token for t in listed)
    assert (await auth.switch_token("ada-workstation")).unwrap().token_name == "ada-workstation"
    assert (hf_home / "token").read_text() == TOKEN
    missing = await auth.switch_token("ghost")
    assert isinstance(missing, Err) and missing.error.kind is ErrorKind.NOT_FOUND


async def test_login_without_token_and_without_tty(auth: HubAuth, hub: FakeHub) -> None:
    # pytest captures stdin, so it is not a terminal here.
    result = await auth.login()
    assert isinstance(result, Err) and result.error.kind is ErrorKind.NO_TOKEN
    assert "terminal" in result.error.message


async def test_login_without_token_keeps_valid_active_token(auth: HubAuth, hub: FakeHub) -> None:
    await auth.login(TOKEN)
    info = (await auth.login()).unwrap()
    assert info.user.username == "ada-lovelace"
    assert "already logged in" in info.notes[0]


# -- lifecycle ----------------------------------------------------------------------------------


async def test_use_after_close_raises(hub: FakeHub) -> None:
    auth = HubAuth(endpoint=hub.url)
    await auth.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await auth.whoami(TOKEN)
    await auth.aclose()  # idempotent


async def test_borrowed_session_is_not_closed(hub: FakeHub) -> None:
    async with aiohttp.ClientSession() as session:
        async with HubAuth(endpoint=hub.url, session=session) as auth:
            assert (await auth.whoami(TOKEN)).is_ok()
        assert not session.closed
        assert (await HubAuth(endpoint=hub.url, session=session).whoami(TOKEN)).is_ok()


async def test_misuse_raises() -> None:
    with pytest.raises(TypeError):
        HubAuth(session="not a session")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid token"):
        HubAuth(token="nope")
    async with HubAuth() as auth:
        with pytest.raises(TypeError):
            await auth.whoami(123)  # type: ignore[arg-type]


async def test_concurrent_calls_share_one_session(auth: HubAuth, hub: FakeHub) -> None:
    assert (await auth.whoami(TOKEN)).is_ok()
    session = auth._client._session
    results = await asyncio.gather(*(auth.whoami(TOKEN) for _ in range(50)))
    assert all(r.is_ok() for r in results)
    assert hub.request_count == 51
    assert auth._client._session is session


async def test_insecure_endpoint_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hub_auth"):
        HubAuth(endpoint="http://hub.internal.example")
    assert "plain http" in caplog.text


async def test_no_token_in_repr_str_or_logs(
    auth: HubAuth, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await auth.set_token(TOKEN)
    outputs: list[object] = [auth, await auth.get_token(), await auth.whoami()]
    outputs.append(await auth.login(TOKEN))
    outputs.append(await auth.list_tokens())
    outputs.append(await auth.whoami(make_token("nobody")))
    hub.fail_next(500, body=f'{{"error": "bad token {TOKEN}"}}')
    outputs.append(await auth.whoami(TOKEN))
    outputs.append(await auth.logout())
    for value in outputs:
        assert TOKEN not in repr(value) and TOKEN not in str(value)
    assert TOKEN not in caplog.text


async def test_aclose_during_a_call_opens_no_new_session(hub: FakeHub) -> None:
    auth = HubAuth(endpoint=hub.url, retry_budget=5.0)
    hub.fail_next(503)  # the call will want a second attempt after aclose()
    call = asyncio.create_task(auth.whoami(TOKEN))
    await asyncio.sleep(0.05)
    await auth.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await call
    assert not auth._client.session_open


async def test_auth_headers_repr_masks_the_token(auth: HubAuth) -> None:
    result = await auth.auth_headers(TOKEN)
    assert result.unwrap() == [("authorization", f"Bearer {TOKEN}")]
    assert TOKEN not in repr(result)
    assert TOKEN not in str(result)


async def test_no_token_errors_are_not_shared_between_calls(auth: HubAuth) -> None:
    first, second = await auth.whoami(), await auth.whoami()
    assert isinstance(first, Err)
    assert isinstance(second, Err)
    assert first.error is not second.error
    for _ in range(3):
        with pytest.raises(HubAuthError) as info:
            first.unwrap()
    tb, depth = info.value.__traceback__, 0
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    assert depth <= 2  # a fresh traceback each time, not one that grows with every raise
