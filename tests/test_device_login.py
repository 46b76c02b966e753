"""Device-code login (RFC 8628) end to end: HubAuth against FakeHub over real sockets.

The polling loop's waits are observed through ``_device.poll_for_token``'s ``sleep``
parameter (a recorder that does not wait), so ``slow_down`` and 5 s intervals cost nothing.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from hub_auth import DeviceCode, Err, ErrorKind, HubAuth, LoginInfo, Ok
from hub_auth._http import HubClient
from hub_auth._oauth import CLIENT_ID_ENV, DEFAULT_CLIENT_ID
from hub_auth._oauth import device as _device
from hub_auth._settings import Settings
from hub_auth.testing import FakeHub, FakeUser
from hub_auth.testing._oauth import DEVICE_CODE_GRANT
from tests.secret_guard import find_tokens

FAST = 0.02


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.oauth.device_interval = FAST
    return hub


@pytest.fixture
async def http(hub: FakeHub) -> AsyncIterator[HubClient]:
    client = HubClient(Settings.resolve(endpoint=hub.url, read_env=False))
    yield client
    await client.close()


def polls(hub: FakeHub) -> int:
    return hub.oauth.token_requests.count(DEVICE_CODE_GRANT)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def read_stored_tokens(hf_home: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(hf_home / "stored_tokens", encoding="utf-8")
    return {name: dict(parser.items(name)) for name in parser.sections()}


async def start(auth: HubAuth) -> DeviceCode:
    started = await auth.start_device_login()
    assert isinstance(started, Ok), started
    return started.value


# -- start -------------------------------------------------------------------------------------


async def test_start_returns_a_device_code_that_hides_its_secret(
    auth: HubAuth, hub: FakeHub
) -> None:
    before = datetime.now(UTC)
    device = await start(auth)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", device.user_code)
    assert device.verification_uri == f"{hub.url}/oauth/device"
    assert device.verification_uri_complete == (
        f"{hub.url}/oauth/device?user_code={device.user_code}"
    )
    assert device.interval == FAST
    assert before + timedelta(seconds=299) <= device.expires_at
    assert device.expires_at <= datetime.now(UTC) + timedelta(seconds=301)
    assert hub.oauth.pending_user_codes == [device.user_code]
    secret = device.device_code.get_secret_value()
    assert len(secret) >= 20
    for shown in (repr(device), str(device), device.model_dump_json(), repr(device.model_dump())):
        assert secret not in shown
    with pytest.raises(ValidationError, match="frozen"):
        device.interval = 1  # type: ignore[misc]


async def test_start_errors_are_values(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with HubAuth(endpoint="http://127.0.0.1:9", hf_home=hf_home) as auth:
        started = await auth.start_device_login()
    assert isinstance(started, Err) and started.error.kind is ErrorKind.NETWORK
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with HubAuth(endpoint="http://127.0.0.1:9", hf_home=hf_home) as auth:
        started = await auth.start_device_login()
    assert isinstance(started, Err) and started.error.kind is ErrorKind.OFFLINE


# -- complete: approve, deny, expire -----------------------------------------------------------


async def test_approve_stores_the_login_as_huggingface_hub_does(
    auth: HubAuth, hub: FakeHub, hf_home: Path
) -> None:
    device = await start(auth)
    task = asyncio.create_task(auth.complete_device_login(device))
    await until(lambda: polls(hub) >= 2)  # pending answers first
    assert not task.done()
    hub.oauth.approve(device.user_code, name="ada-lovelace", email="ada@example.com")
    result = await asyncio.wait_for(task, 5)
    assert isinstance(result, Ok), result
    info = result.value
    assert isinstance(info, LoginInfo)
    assert info.user.username == "ada-lovelace"
    assert info.token_name == "oauth-ada-lovelace"
    assert info.expires_at is not None
    assert any("refreshed automatically" in note for note in info.notes)

    sections = read_stored_tokens(hf_home)
    assert list(sections) == ["oauth-ada-lovelace"]
    entry = sections["oauth-ada-lovelace"]
    assert set(entry) == {"hf_token", "refresh_token", "expires_at", "hub_auth_endpoint"}
    assert entry["hub_auth_endpoint"] == hub.url  # its refresh token goes back only there
    assert entry["hf_token"].startswith("hf_oauth_")
    assert entry["refresh_token"] and entry["refresh_token"] != entry["hf_token"]
    assert re.fullmatch(r"\d+", entry["expires_at"])
    assert abs(int(entry["expires_at"]) - (time.time() + 30 * 86400)) < 60
    assert int(entry["expires_at"]) == int(info.expires_at.timestamp())
    assert (hf_home / "token").read_text() == entry["hf_token"]
    # The stored token is the active one, and the Hub knows it.
    whoami = await auth.whoami()
    assert isinstance(whoami, Ok) and whoami.value.username == "ada-lovelace"
    assert hub.oauth.pending_user_codes == []


def test_the_stored_login_reads_back_with_huggingface_hub(hub_home_login: Path) -> None:
    """The real huggingface_hub, in a process of its own, reads what device login stored."""
    script = (
        "import json\n"
        "from huggingface_hub import get_token\n"
        "from huggingface_hub.utils._auth import get_stored_tokens, _read_stored_tokens_full\n"
        "print(json.dumps({'active': get_token(), 'stored': get_stored_tokens(),"
        " 'full': _read_stored_tokens_full()}))\n"
    )
    env = {**os.environ, "HF_HOME": str(hub_home_login)}
    env.pop("HF_TOKEN", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    entries = read_stored_tokens(hub_home_login)
    entry = entries["oauth-ada-lovelace"]
    assert seen["active"] == entry["hf_token"]
    assert seen["stored"] == {"oauth-ada-lovelace": entry["hf_token"]}
    assert seen["full"]["oauth-ada-lovelace"] == entry


@pytest.fixture
def hub_home_login(fake_hub: FakeHub, hf_home: Path) -> Path:
    """A device login completed through the sync facade (its own loop) against FakeHub."""
    from hub_auth import HubAuthSync

    fake_hub.oauth.device_interval = FAST
    with HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home) as auth:
        device = auth.start_device_login().unwrap()
        fake_hub.oauth.approve(device.user_code, FakeUser(name="ada-lovelace"))
        info = auth.complete_device_login(device).unwrap()
    assert info.token_name == "oauth-ada-lovelace"
    return hf_home


async def test_deny_stores_nothing(auth: HubAuth, hub: FakeHub, hf_home: Path) -> None:
    device = await start(auth)
    task = asyncio.create_task(auth.complete_device_login(device))
    await until(lambda: polls(hub) >= 1)
    hub.oauth.deny(device.user_code)
    result = await asyncio.wait_for(task, 5)
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.ACCESS_DENIED
    assert "denied" in result.error.message
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()


async def test_expired_by_the_hub(auth: HubAuth, hub: FakeHub, hf_home: Path) -> None:
    device = await start(auth)
    task = asyncio.create_task(auth.complete_device_login(device))
    await until(lambda: polls(hub) >= 1)
    hub.oauth.expire(device.user_code)
    result = await asyncio.wait_for(task, 5)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.EXPIRED
    assert "start a new login" in result.error.message
    assert not (hf_home / "token").exists()


async def test_expired_when_the_code_lifetime_ends(
    auth: HubAuth, hub: FakeHub, hf_home: Path
) -> None:
    hub.oauth.device_expires_in = 0.2
    device = await start(auth)
    result = await asyncio.wait_for(auth.complete_device_login(device), 5)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.EXPIRED
    assert not (hf_home / "token").exists()


async def test_expired_at_the_clients_deadline_stops_polling(auth: HubAuth, hub: FakeHub) -> None:
    # The Hub would wait 300 s; the client gives up at the code's expires_at.
    device = await start(auth)
    soon = device.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=0.2)})
    began = time.monotonic()
    result = await asyncio.wait_for(auth.complete_device_login(soon), 5)
    assert time.monotonic() - began < 2
    assert isinstance(result, Err) and result.error.kind is ErrorKind.EXPIRED
    assert "timeout" in result.error.message
    count = polls(hub)
    assert count >= 2
    await asyncio.sleep(0.1)
    assert polls(hub) == count


async def test_cancelling_stops_polling_and_stores_nothing(
    auth: HubAuth, hub: FakeHub, hf_home: Path
) -> None:
    device = await start(auth)
    task = asyncio.create_task(auth.complete_device_login(device))
    await until(lambda: polls(hub) >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    hub.oauth.approve(device.user_code, name="ada-lovelace")
    count = polls(hub)
    await asyncio.sleep(10 * FAST)
    assert polls(hub) == count
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()


# -- the polling loop's waits ------------------------------------------------------------------


class Waits:
    """A ``sleep`` that records the waits asked for and runs ``then`` on the n-th one."""

    def __init__(self, on: int = 0, then: Callable[[], None] | None = None) -> None:
        self.asked: list[float] = []
        self._on, self._then = on, then

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        if len(self.asked) == self._on and self._then is not None:
            self._then()
        await asyncio.sleep(0)


async def test_slow_down_adds_five_seconds_for_the_rest_of_the_loop(
    http: HubClient, hub: FakeHub
) -> None:
    device = (await _device.request_device_code(http, DEFAULT_CLIENT_ID)).unwrap()
    hub.oauth.slow_down_next(2)
    waits = Waits(on=4, then=lambda: hub.oauth.approve(device.user_code, name="ada-lovelace"))
    result = await _device.poll_for_token(http, device, DEFAULT_CLIENT_ID, sleep=waits)
    assert isinstance(result, Ok), result
    # slow_down, slow_down, pending, pending (approved meanwhile), token.
    assert waits.asked == pytest.approx([FAST + 5, FAST + 10, FAST + 10, FAST + 10])
    assert polls(hub) == 5
    assert result.value.access_token.startswith("hf_oauth_")
    assert result.value.expires_in == 30 * 86400
    assert "hf_oauth_" not in repr(result.value)


async def test_first_poll_is_at_once_and_pending_is_reported(http: HubClient, hub: FakeHub) -> None:
    device = (await _device.request_device_code(http, DEFAULT_CLIENT_ID)).unwrap()
    pending: list[int] = []
    waits = Waits(on=3, then=lambda: hub.oauth.approve(device.user_code, name="ada"))
    result = await _device.poll_for_token(
        http,
        device,
        DEFAULT_CLIENT_ID,
        sleep=waits,
        on_pending=lambda: pending.append(polls(hub)),
    )
    assert isinstance(result, Ok)
    assert pending == [1, 2, 3]  # the first poll happened before any wait
    assert waits.asked == pytest.approx([FAST] * 3)


async def test_server_errors_are_transient(http: HubClient, hub: FakeHub) -> None:
    device = (await _device.request_device_code(http, DEFAULT_CLIENT_ID)).unwrap()
    hub.oauth.fail_next_poll(503, count=2)
    hub.oauth.fail_next_poll(502)
    hub.oauth.approve(device.user_code, name="ada-lovelace")
    waits = Waits()
    result = await _device.poll_for_token(http, device, DEFAULT_CLIENT_ID, sleep=waits)
    assert isinstance(result, Ok), result
    assert polls(hub) == 4
    assert waits.asked == pytest.approx([FAST] * 3)


async def test_network_errors_are_transient(hub: FakeHub) -> None:
    # A Hub that is briefly unreachable: the first polls fail to connect.
    async with FakeHub() as down:
        url = down.url
    http = HubClient(Settings.resolve(endpoint=hub.url, read_env=False))
    try:
        device = (await _device.request_device_code(http, DEFAULT_CLIENT_ID)).unwrap()
    finally:
        await http.close()
    unreachable = HubClient(Settings.resolve(endpoint=url, read_env=False))
    waits = Waits()
    soon = device.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=0.3)})
    try:
        result = await _device.poll_for_token(
            unreachable, soon, DEFAULT_CLIENT_ID, sleep=_real_sleep(waits)
        )
    finally:
        await unreachable.close()
    assert isinstance(result, Err) and result.error.kind is ErrorKind.EXPIRED
    assert len(waits.asked) >= 2  # kept polling after connection errors


def _real_sleep(waits: Waits) -> _device.Sleep:
    async def sleep(seconds: float) -> None:
        waits.asked.append(seconds)
        await asyncio.sleep(seconds)

    return sleep


async def test_another_oauth_error_ends_with_a_clear_err(
    auth: HubAuth, hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started with a staging client id (from the environment), completed with the default.
    monkeypatch.setenv(CLIENT_ID_ENV, "staging-app")
    device = await start(auth)
    async with HubAuth(endpoint=hub.url, hf_home=hf_home, read_env=False) as other:
        result = await other.complete_device_login(device)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.BAD_RESPONSE
    assert "invalid_grant" in result.error.message
    assert device.device_code.get_secret_value() not in str(result.error)
    # The same client id for both steps works.
    hub.oauth.approve(device.user_code, name="ada")
    assert isinstance(await auth.complete_device_login(device), Ok)


async def test_complete_rejects_what_is_not_a_device_code(auth: HubAuth) -> None:
    with pytest.raises(TypeError, match="DeviceCode"):
        await auth.complete_device_login("not a device")  # type: ignore[arg-type]


# -- FakeHub's device page ---------------------------------------------------------------------


async def test_device_page_approves_with_the_typed_code(auth: HubAuth, hub: FakeHub) -> None:
    device = await start(auth)
    hub.oauth.browser_user = FakeUser(name="grace-hopper")
    async with aiohttp.ClientSession() as browser:
        async with browser.get(device.verification_uri_complete) as page:
            text = await page.text()
            assert page.status == 200
            assert f'value="{device.user_code}"' in text
            assert "grace-hopper" in text
        form = {"user_code": device.user_code.lower().replace("-", ""), "action": "approve"}
        async with browser.post(f"{hub.url}/oauth/device/confirm", data=form) as done:
            assert done.status == 200
            assert "Device connected" in await done.text()
    result = await auth.complete_device_login(device)
    assert isinstance(result, Ok) and result.value.user.username == "grace-hopper"
    assert result.value.token_name == "oauth-grace-hopper"


async def test_device_page_denies_and_escapes(auth: HubAuth, hub: FakeHub) -> None:
    device = await start(auth)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(
            f"{hub.url}/oauth/device", params={"user_code": '"><script>x</script>'}
        ) as page:
            text = await page.text()
            assert "<script>" not in text and "&lt;script&gt;" in text
        bad = {"user_code": "ZZZZ-ZZZZ", "action": "approve"}
        async with browser.post(f"{hub.url}/oauth/device/confirm", data=bad) as refused:
            assert refused.status == 400
        deny = {"user_code": device.user_code, "action": "deny"}
        async with browser.post(f"{hub.url}/oauth/device/confirm", data=deny) as done:
            assert "Access denied" in await done.text()
    result = await auth.complete_device_login(device)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.ACCESS_DENIED


async def test_device_codes_and_refresh_tokens_never_reach_logs(
    auth: HubAuth, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    device = await start(auth)
    hub.oauth.approve(device.user_code, name="ada-lovelace")
    info = (await auth.complete_device_login(device)).unwrap()
    secret = device.device_code.get_secret_value()
    assert find_tokens(secret) == [secret]  # the guard knows device codes
    assert info.token_name in caplog.text  # the login was logged...
    assert secret not in caplog.text  # ...without the secrets (the guard checks the rest)


async def test_a_device_login_close_to_expiry_is_refreshed_with_its_refresh_token(
    auth: HubAuth, hub: FakeHub, hf_home: Path
) -> None:
    # The refresh grant accepts the refresh token the device grant handed out.
    hub.oauth.access_token_lifetime = 3600.0  # inside the 24 h refresh margin
    device = await start(auth)
    hub.oauth.approve(device.user_code, name="ada-lovelace")
    assert isinstance(await auth.complete_device_login(device), Ok)
    first = read_stored_tokens(hf_home)["oauth-ada-lovelace"]
    assert hub.oauth.refresh_requests == 0
    token = (await auth.get_token()).unwrap().get_secret_value()
    assert hub.oauth.refresh_requests == 1
    after = read_stored_tokens(hf_home)["oauth-ada-lovelace"]
    assert token == after["hf_token"] != first["hf_token"]
    assert after["refresh_token"] != first["refresh_token"]
