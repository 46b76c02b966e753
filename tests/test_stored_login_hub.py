"""A stored OAuth login is refreshed only at the Hub that issued it (issue 21, item 3).

Two FakeHubs: ``issuer`` hands out the device login, ``other`` plays a mirror or a mistyped
``HF_ENDPOINT``. ``other`` must never receive the refresh token (FakeHub records every request
and every token grant), and nothing it could answer may rewrite the login files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub_auth import HubAuth, Ok
from hub_auth._login.store import ENDPOINT_KEY, TokenStore
from hub_auth._oauth.refresh import refresh_endpoint, refreshes_at
from hub_auth.testing import FakeHub, FakeUser

HOUR = 3600
NAME = "oauth-ada"


@pytest.fixture(autouse=True)
def _default_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", raising=False)


@pytest.fixture
async def issuer() -> AsyncIterator[FakeHub]:
    async with FakeHub() as hub:
        yield hub


@pytest.fixture
async def other() -> AsyncIterator[FakeHub]:
    async with FakeHub() as hub:
        yield hub


async def device_login(hub: FakeHub, hf_home: Path) -> str:
    """A real device login at ``hub`` (approved at once); returns its ``stored_tokens`` name."""
    async with HubAuth(endpoint=hub.url, hf_home=hf_home) as auth:
        device = (await auth.start_device_login()).unwrap()
        hub.oauth.approve(device.user_code, FakeUser(name="ada"))
        info = (await auth.complete_device_login(device)).unwrap()
    return info.token_name


def make_due(store: TokenStore, name: str) -> dict[str, str]:
    """Move the entry's expiry to an hour from now (less than a day: a refresh is due)."""
    fields = dict(store.read_entries().unwrap()[name])
    token = fields.pop("hf_token")
    fields["expires_at"] = str(int(time.time()) + HOUR)
    store.save(name, token, extra=fields).unwrap()
    return store.read_entries().unwrap()[name]


def store_hf_hub_login(hub: FakeHub, store: TokenStore) -> dict[str, str]:
    """A due login as huggingface_hub stores it: no record of the Hub that issued it."""
    answer = hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=HOUR)
    extra = {
        "refresh_token": answer["refresh_token"],
        "expires_at": str(int(time.time()) + HOUR),
    }
    store.save(NAME, answer["access_token"], extra=extra).unwrap()
    return store.read_entries().unwrap()[NAME]


def files(store: TokenStore) -> tuple[bytes, bytes]:
    return store.token_path.read_bytes(), store.stored_tokens_path.read_bytes()


def assert_never_asked_to_refresh(hub: FakeHub, refresh_token: str) -> None:
    assert hub.oauth.token_requests == []
    for request in hub.requests:
        assert request.path != "/oauth/token"
        assert refresh_token not in request.query_string
        assert all(refresh_token not in value for value in request.headers.values())


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "hub_auth" and record.levelno >= logging.WARNING
    ]


# -- the recorded Hub -----------------------------------------------------------------------


async def test_a_device_login_records_the_hub_it_came_from(
    issuer: FakeHub, store: TokenStore, hf_home: Path
) -> None:
    name = await device_login(issuer, hf_home)
    entry = store.read_entries().unwrap()[name]
    assert entry[ENDPOINT_KEY] == issuer.url
    assert refresh_endpoint(entry) == issuer.url


async def test_another_endpoint_never_receives_the_refresh_token(
    issuer: FakeHub,
    other: FakeHub,
    store: TokenStore,
    hf_home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = await device_login(issuer, hf_home)
    entry = make_due(store, name)
    before = files(store)
    other.add_token(entry["hf_token"], FakeUser(name="ada"))  # the mirror knows the token
    for _ in range(2):  # two clients in one process: one warning
        async with HubAuth(endpoint=other.url, hf_home=hf_home) as auth:
            token = (await auth.get_token()).unwrap().get_secret_value()
            assert token == entry["hf_token"]  # used as it is
            assert (await auth.whoami()).unwrap().username == "ada"
    assert_never_asked_to_refresh(other, entry["refresh_token"])
    assert issuer.oauth.token_requests.count("refresh_token") == 0
    assert files(store) == before  # nothing rewritten
    [warning] = warnings_of(caplog)
    assert f"belongs to '{issuer.url}'" in warning
    assert f"`hub-auth login --endpoint '{other.url}'`" in warning


async def test_the_issuing_hub_still_refreshes_and_the_record_is_kept(
    issuer: FakeHub, store: TokenStore, hf_home: Path
) -> None:
    name = await device_login(issuer, hf_home)
    entry = make_due(store, name)
    # The same Hub written another way (case, trailing slash) is the same Hub.
    spelled = issuer.url.replace("http://", "HTTP://") + "/"
    async with HubAuth(endpoint=spelled, hf_home=hf_home) as auth:
        token = (await auth.get_token()).unwrap().get_secret_value()
    assert issuer.oauth.refresh_requests == 1
    renewed = store.read_entries().unwrap()[name]
    assert token == renewed["hf_token"] != entry["hf_token"]
    assert renewed[ENDPOINT_KEY] == issuer.url


async def test_a_login_without_the_record_is_refreshed_only_at_huggingface_co(
    other: FakeHub, store: TokenStore, hf_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = store_hf_hub_login(other, store)  # even the Hub that issued it: it cannot know
    before = files(store)
    async with HubAuth(endpoint=other.url, hf_home=hf_home) as auth:
        token = (await auth.get_token()).unwrap().get_secret_value()
        await auth.get_token()
    assert token == entry["hf_token"]
    assert_never_asked_to_refresh(other, entry["refresh_token"])
    assert files(store) == before
    [warning] = warnings_of(caplog)
    assert "does not say which Hub issued it" in warning
    assert "only at https://huggingface.co" in warning
    assert f"`hub-auth login --endpoint '{other.url}'`" in warning


async def test_the_warning_shows_a_recorded_hub_safely(
    other: FakeHub, store: TokenStore, hf_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = store_hf_hub_login(other, store)
    hostile = "https://user:pa55word@hub.example.com/\x1b]0;title\x07/path"
    fields = {key: value for key, value in entry.items() if key != "hf_token"}
    store.save(NAME, entry["hf_token"], extra={**fields, ENDPOINT_KEY: hostile}).unwrap()
    async with HubAuth(endpoint=other.url, hf_home=hf_home) as auth:
        await auth.get_token()
    assert other.oauth.token_requests == []
    [warning] = warnings_of(caplog)
    assert "belongs to 'https://hub.example.com'" in warning
    assert "pa55word" not in warning and "\x1b" not in warning and "path" not in warning


@pytest.mark.parametrize(
    ("recorded", "endpoint", "refreshed"),
    [
        (None, "https://huggingface.co", True),
        (None, "https://HuggingFace.co:443/", True),
        (None, "https://hf-mirror.com", False),
        (None, "http://huggingface.co", False),
        ("https://hub.example.com", "https://hub.example.com", True),
        ("https://hub.example.com", "https://huggingface.co", False),
        ("https://hub.example.com/hub", "https://hub.example.com", False),
        ("https://hub.example.com", "https://hub.example.com.evil.example", False),
        ("not a url", "not a url", False),
    ],
)
def test_which_endpoint_refreshes_which_login(
    recorded: str | None, endpoint: str, refreshed: bool
) -> None:
    fields = {"hf_token": "x", "refresh_token": "r", "expires_at": "1"}
    if recorded is not None:
        fields[ENDPOINT_KEY] = recorded
    assert refreshes_at(fields, endpoint) is refreshed


def test_whoami_does_not_promise_a_refresh_at_another_hub(
    fake_hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from hub_auth.cli import main

    entry = store_hf_hub_login(fake_hub, store)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    result = CliRunner().invoke(main, ["whoami"])
    assert result.exit_code == 0, result.output
    assert "  expires:  " in result.stdout
    assert "refreshed automatically" not in result.stdout
    assert fake_hub.oauth.token_requests == []
    assert store.read_entries().unwrap()[NAME] == entry


# -- huggingface_hub reads the files (the real one, in a process of its own) -----------------


@pytest.mark.slow
async def test_huggingface_hub_reads_and_refreshes_a_login_with_the_record(
    issuer: FakeHub, store: TokenStore, hf_home: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    name = await device_login(issuer, hf_home)
    entry = make_due(store, name)
    script = (
        "import hashlib, json\n"
        "from huggingface_hub import get_token\n"
        "from huggingface_hub.utils._auth import _read_stored_tokens_full, get_stored_tokens\n"
        "h = lambda s: hashlib.sha256(s.encode()).hexdigest()\n"
        f"before = _read_stored_tokens_full()[{name!r}]\n"
        "names = sorted(get_stored_tokens())\n"
        "token = get_token()\n"
        f"print(json.dumps({{'names': names, 'keys': sorted(before), 'endpoint': "
        f"before[{ENDPOINT_KEY!r}], 'hf_token': h(before['hf_token']), 'token': h(token)}}))\n"
    )
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_ENDPOINT": issuer.url}
    env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
    # In a thread: the FakeHubs answer on this test's event loop.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["names"] == [name]
    assert seen["keys"] == sorted(entry)
    assert seen["endpoint"] == issuer.url
    assert seen["hf_token"] == hashlib.sha256(entry["hf_token"].encode()).hexdigest()
    # huggingface_hub refreshed it (at HF_ENDPOINT) and rewrote the section without our key:
    # from then on hub_auth counts it as a login of https://huggingface.co.
    assert issuer.oauth.refresh_requests == 1
    renewed = store.read_entries().unwrap()[name]
    assert seen["token"] == hashlib.sha256(renewed["hf_token"].encode()).hexdigest()
    assert ENDPOINT_KEY not in renewed
    assert not refreshes_at(renewed, issuer.url)
    async with HubAuth(endpoint=issuer.url, hf_home=hf_home) as auth:
        assert isinstance(await auth.whoami(), Ok)
