"""``hub-auth login --device`` and the browser choice of ``hub-auth login``, in a real pty.

The person's approval comes through FakeHub's control (``hub.oauth.approve``) while the child
process waits; everything the terminal showed is searched for secrets.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_auth.testing import FakeHub, FakeUser
from tests.secret_guard import find_tokens

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")

CODE = re.compile(r"And enter the code: ([A-Z0-9]{4}-[A-Z0-9]{4})")


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.oauth.device_interval = 0.05
    return fake_hub


class Terminal:
    """``python -m hub_auth.cli ARGS`` on a pseudo-terminal, and everything it displayed."""

    def __init__(self, *args: str) -> None:
        self.screen = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "hub_auth.cli", *args],
            env=dict(os.environ),
            encoding="utf-8",
            timeout=20,
        )
        self.child.logfile_read = self.screen

    def user_code(self) -> str:
        self.child.expect("Open this URL in your browser:")
        self.child.expect(CODE)
        return str(self.child.match.group(1))

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        status: int = self.child.exitstatus
        return status

    @property
    def text(self) -> str:
        return self.screen.getvalue()


def stored_sections(hf_home: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(hf_home / "stored_tokens", encoding="utf-8")
    return {name: dict(parser.items(name)) for name in parser.sections()}


def assert_no_secrets(text: str) -> None:
    assert find_tokens(text) == [], "a token, refresh token or device code was shown"


def test_device_login_prints_url_and_code_waits_and_stores(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--device", "--endpoint", hub.url)
    code = term.user_code()
    assert f"{hub.url}/oauth/device?user_code={code}" in term.text
    assert hub.oauth.pending_user_codes == [code]
    term.child.expect("Waiting for authorization")
    term.child.expect(r"\.\.")  # progress: a dot per pending answer
    hub.oauth.approve(code, FakeUser(name="ada-lovelace"))
    term.child.expect("Login successful")
    assert term.finish() == 0, term.text
    assert "logged in as ada-lovelace; active token: 'oauth-ada-lovelace'" in term.text
    assert re.search(
        r"refreshed automatically when it expires, around \d{4}-\d\d-\d\d \d\d:\d\d UTC",
        term.text,
    ), term.text
    entry = stored_sections(hf_home)["oauth-ada-lovelace"]
    assert (hf_home / "token").read_text() == entry["hf_token"]
    assert {"refresh_token", "expires_at"} <= set(entry)
    assert_no_secrets(term.text)
    assert entry["refresh_token"] not in term.text


def test_ctrl_c_while_waiting_stores_nothing(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--device", "--endpoint", hub.url)
    code = term.user_code()
    term.child.expect(r"Waiting for authorization\.")
    term.child.sendintr()
    assert term.finish() == 1, term.text
    assert "Login cancelled: nothing was stored." in term.text
    assert "Traceback" not in term.text
    # Approving afterwards changes nothing: the process stopped polling.
    hub.oauth.approve(code, name="ada-lovelace")
    time.sleep(0.2)
    assert not (hf_home / "token").exists()
    assert not (hf_home / "stored_tokens").exists()
    assert_no_secrets(term.text)


def test_denied_in_the_browser(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--device", "--endpoint", hub.url)
    hub.oauth.deny(term.user_code())
    assert term.finish() == 1, term.text
    assert "denied" in term.text
    # The advice once, in CLI terms: not the library's "start a new login" as well.
    assert term.text.count("again") == 1, term.text
    assert "run `hub-auth login --device` again to retry" in term.text
    assert "start a new login" not in term.text
    assert "Traceback" not in term.text
    assert not (hf_home / "token").exists()


def test_an_expired_code_says_its_advice_once(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--device", "--endpoint", hub.url)
    hub.oauth.expire(term.user_code())
    assert term.finish() == 1, term.text
    assert "expired" in term.text
    assert term.text.count("again") == 1, term.text
    assert "run `hub-auth login --device` again for a new code" in term.text
    assert "start a new login" not in term.text
    assert not (hf_home / "token").exists()


def test_device_login_without_a_terminal(hub: FakeHub, hf_home: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "hub_auth.cli", "login", "--device", "--endpoint", hub.url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    shown = ""
    while (match := CODE.search(shown)) is None:
        line = child.stdout.readline()
        assert line, f"no code was printed: {shown!r}"
        shown += line
    hub.oauth.approve(match.group(1), name="grace-hopper")
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert "Open this URL in your browser:" in shown
    assert "Login successful" in out
    assert "oauth-grace-hopper" in stored_sections(hf_home)
    assert_no_secrets(shown + out + err)


def test_interactive_login_offers_the_browser_by_default(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--endpoint", hub.url)
    term.child.expect("1. Log in with your browser \\(default\\)")
    term.child.expect("2. Paste an access token")
    term.child.expect(r"Choice \[1\]: ")
    term.child.sendline("")
    code = term.user_code()
    term.child.expect("Waiting for authorization")
    hub.oauth.approve(code, name="ada-lovelace")
    assert term.finish() == 0, term.text
    assert "logged in as ada-lovelace; active token: 'oauth-ada-lovelace'" in term.text
    assert "refreshed automatically" in term.text
    assert "oauth-ada-lovelace" in stored_sections(hf_home)
    assert_no_secrets(term.text)


def test_device_and_token_are_exclusive(hub: FakeHub) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.cli", "login", "--device", "--token", "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--device and --token cannot be used together" in done.stderr


def test_ctrl_c_while_waiting_after_choosing_the_browser(hub: FakeHub, hf_home: Path) -> None:
    term = Terminal("login", "--endpoint", hub.url)
    term.child.expect(r"Choice \[1\]: ")
    term.child.sendline("1")
    code = term.user_code()
    term.child.expect(r"Waiting for authorization\.")
    term.child.sendintr()
    assert term.finish() == 1, term.text
    assert "Aborted!" in term.text
    assert "Traceback" not in term.text
    hub.oauth.approve(code, name="ada-lovelace")
    time.sleep(0.2)
    assert not (hf_home / "token").exists()
    assert_no_secrets(term.text)
