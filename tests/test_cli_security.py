"""The real ``hub-auth`` process shows nothing a hostile file, variable or Hub could use against
the terminal or the login (issue 21, items 9 and 12).

The CLI tests run the installed entry point in a process of their own (the module is in
``SLOW_MODULES``): what reaches the terminal is what the process writes, byte for byte. The
device-code tests also check the library, whose messages the CLI prints.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from hub_auth import DeviceCode, Err, ErrorKind, HubAuth
from hub_auth._login.prompt import show_device_code
from hub_auth._login.store import ENDPOINT_KEY, TokenStore
from hub_auth.testing import FakeHub, FakeUser, make_token
from tests.secret_guard import find_tokens

# Terminal escape sequences a token file or HF_TOKEN could carry.
OSC52_CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"
WINDOW_TITLE = "\x1b]0;all good\x07"
C1_CSI = "\x9b2J"


def hub_auth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real entry point; bytes, so nothing is decoded away."""
    script = Path(sys.executable).parent / "hub-auth"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hub_auth.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_refused_safely(done: subprocess.CompletedProcess[bytes], secret: str) -> str:
    assert done.returncode == 1, done
    assert done.stdout == b""
    assert b"Traceback" not in done.stderr
    for byte in (b"\x1b", b"\x07", b"\x9b", "\x9b".encode()):
        assert byte not in done.stderr
    message = done.stderr.decode()
    assert secret not in message
    assert "not a Hub token" in message
    assert "it was not printed" in message
    return message


# -- item 9: `hub-auth token` prints only what looks like a token ---------------------------


@pytest.mark.parametrize(
    "sequence", [OSC52_CLIPBOARD, CLEAR_SCREEN, WINDOW_TITLE, C1_CSI], ids=repr
)
def test_token_refuses_hf_token_with_escape_sequences(sequence: str) -> None:
    token = make_token("escapes")
    done = hub_auth("token", env={"HF_TOKEN": token + sequence})
    message = assert_refused_safely(done, token)
    assert "HF_TOKEN" in message
    assert "control" in message  # check_format's reason


@pytest.mark.parametrize("sequence", [OSC52_CLIPBOARD, CLEAR_SCREEN, WINDOW_TITLE], ids=repr)
def test_token_refuses_a_token_file_with_escape_sequences(hf_home: Path, sequence: str) -> None:
    token = make_token("file-escapes")
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(sequence + token, encoding="utf-8")
    message = assert_refused_safely(hub_auth("token"), token)
    assert f"the token file {hf_home / 'token'}" in message


def test_the_message_escapes_a_hostile_token_path(tmp_path: Path) -> None:
    folder = tmp_path / f"login{WINDOW_TITLE}"
    folder.mkdir()
    (folder / "token").write_text("not a token at all", encoding="utf-8")
    done = hub_auth("token", env={"HF_TOKEN_PATH": str(folder / "token")})
    message = assert_refused_safely(done, "not a token at all")
    assert "login\\x1b]0;all good\\x07" in message  # shown, escaped


def test_token_still_prints_a_real_token(hf_home: Path) -> None:
    token = make_token("printable")
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(token, encoding="utf-8")
    done = hub_auth("token")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{token}\n".encode(), b"")
    done = hub_auth("token", env={"HF_TOKEN": f"  {token}\n"})  # stripped, as huggingface_hub
    assert (done.returncode, done.stdout) == (0, f"{token}\n".encode())


# -- item 3: `hub-auth whoami` at another endpoint keeps the refresh token home ------------


def test_whoami_at_another_endpoint_says_once_how_to_log_in_there(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    issued = fake_hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=3600)
    soon = str(int(time.time()) + 3600)
    extra = {"refresh_token": issued["refresh_token"], "expires_at": soon}
    TokenStore(hf_home / "token").save(
        "oauth-ada", issued["access_token"], extra={**extra, ENDPOINT_KEY: fake_hub.url}
    ).unwrap()
    files = (hf_home / "token").read_bytes(), (hf_home / "stored_tokens").read_bytes()
    with FakeHub() as other:  # a mirror that knows the access token
        other.add_token(issued["access_token"], FakeUser(name="ada"))
        done = hub_auth("whoami", env={"HF_ENDPOINT": other.url})
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, (out, err)
        assert other.oauth.token_requests == []
        assert all(request.path != "/oauth/token" for request in other.requests)
        other_url = other.url
    assert fake_hub.oauth.token_requests == []
    assert files == ((hf_home / "token").read_bytes(), (hf_home / "stored_tokens").read_bytes())
    assert out.startswith("ada")
    assert "refreshed automatically" not in out
    assert err.count(f"belongs to '{fake_hub.url}'") == 1
    assert err.count(f"`hub-auth login --endpoint '{other_url}'`") == 1
    assert find_tokens(out + err) == []


# -- item 12: the device code never shows in a message ------------------------------------


@pytest.mark.parametrize("error", ["invalid_request", "invalid_grant", "unsupported_grant_type"])
async def test_a_hub_echoing_the_device_code_does_not_reveal_it(
    hub: FakeHub, hf_home: Path, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="hub_auth")
    hub.oauth.device_interval = 0.01
    async with HubAuth(endpoint=hub.url, hf_home=hf_home) as auth:
        device = (await auth.start_device_login()).unwrap()
        hub.oauth.echo_device_code_next(error)
        result = await auth.complete_device_login(device)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.BAD_RESPONSE
    secret = device.device_code.get_secret_value()
    message = str(result.error)
    assert secret not in message
    assert f"OAuth error: {error} - cannot accept the device code ****" in message
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert not (hf_home / "token").exists()


def test_the_printed_url_and_code_never_show_the_device_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "dc-" + "q" * 37
    device = DeviceCode(
        device_code=SecretStr(secret),
        user_code=f"CODE {secret}",
        verification_uri="https://hub.example.com/oauth/device",
        verification_uri_complete=f"https://hub.example.com/oauth/device?device_code={secret}",
        expires_at=datetime.now(UTC),
        interval=5.0,
    )
    show_device_code(device)
    shown = capsys.readouterr().out
    assert secret not in shown
    assert "device_code=****" in shown and "CODE ****" in shown


def test_login_device_in_a_real_process_masks_an_echoed_device_code(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    fake_hub.oauth.device_interval = 0.05
    fake_hub.oauth.echo_device_code_next("invalid_request")
    done = hub_auth("login", "--device", "--endpoint", fake_hub.url)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 1, (out, err)
    assert re.search(r"And enter the code: [A-Z0-9]{4}-[A-Z0-9]{4}", out), out
    assert "OAuth error: invalid_request - cannot accept the device code ****" in err
    assert "Traceback" not in err
    assert find_tokens(out + err) == [], "the device code (or a token) was shown"
    assert not (hf_home / "token").exists()
