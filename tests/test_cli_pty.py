"""``hub-auth`` on a real pseudo-terminal: hidden token prompt, git question (asked once the Hub
accepted the token), interactive switch.

Each test spawns ``python -m hub_auth.cli`` with pexpect, so the child's standard input is a
terminal and everything the terminal would show (echo included) is captured.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub_auth._login.store import TokenStore
from hub_auth.testing import FakeHub, FakeUser, make_token

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")

TOKEN = make_token("pty-ada")
OTHER = make_token("pty-charles")
UNKNOWN = make_token("pty-nobody")
TOKEN_PROMPT = r"Enter your Hugging Face token \(input is hidden\): "
GIT_PROMPT = r"Add token as git credential\? \[y/N\]: "
METHOD_PROMPT = r"Choice \[1\]: "


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_token(TOKEN, FakeUser(name="ada-lovelace", token_name="ada-workstation"))
    fake_hub.add_token(OTHER, FakeUser(name="charles-b", token_name="charles-laptop"))
    return fake_hub


class Terminal:
    """A child process on a pseudo-terminal and everything it displayed."""

    def __init__(self, *args: str, program: str = sys.executable) -> None:
        self.screen = io.StringIO()
        self.child = pexpect.spawn(
            program, list(args), env=dict(os.environ), encoding="utf-8", timeout=20
        )
        self.child.logfile_read = self.screen

    @classmethod
    def hub_auth(cls, *args: str) -> Terminal:
        return cls("-m", "hub_auth.cli", *args)

    def paste_token_login(self) -> None:
        """Answer "Paste an access token" in the login menu and wait for the token prompt."""
        self.child.expect("2. Paste an access token")
        self.child.expect(METHOD_PROMPT)
        self.child.sendline("2")
        self.child.expect(TOKEN_PROMPT)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        status: int = self.child.exitstatus
        return status

    @property
    def text(self) -> str:
        return self.screen.getvalue()


def test_login_prompt_hides_the_token(hub: FakeHub, store: TokenStore) -> None:
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    term.paste_token_login()
    assert term.child.waitnoecho(timeout=5), "echo is still on at the token prompt"
    term.child.sendline(TOKEN)
    term.child.expect(GIT_PROMPT)
    term.child.sendline("")  # the default: no
    assert term.finish() == 0, term.text
    assert TOKEN not in term.text
    assert "logged in as ada-lovelace; active token: 'ada-workstation'" in term.text
    assert store.read_active().unwrap() == TOKEN
    assert store.get_token_by_name("ada-workstation").unwrap() == TOKEN


def test_login_prompt_rejected_token(hub: FakeHub, store: TokenStore) -> None:
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    term.paste_token_login()
    term.child.sendline(UNKNOWN)
    assert term.finish() == 1  # no git question to answer: the Hub refused the token
    assert "git credential" not in term.text
    assert UNKNOWN not in term.text
    assert "the Hub rejected the token" in term.text
    assert "Traceback" not in term.text
    assert not store.token_path.exists()


def test_login_asks_the_git_question_after_the_hub_accepted_the_token(
    hub: FakeHub, store: TokenStore
) -> None:
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    term.paste_token_login()
    hub.reset_counts()
    term.child.sendline(TOKEN)
    term.child.expect(GIT_PROMPT)
    # The Hub has already been asked about this token, and nothing is stored before the answer.
    assert [r.token for r in hub.requests if r.path == "/api/whoami-v2"] == [TOKEN]
    assert not store.token_path.exists()
    term.child.sendline("n")
    assert term.finish() == 0, term.text
    assert store.read_active().unwrap() == TOKEN


def test_login_keeps_a_valid_active_token_unless_forced(hub: FakeHub, store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    assert term.finish() == 0, term.text
    assert "already logged in as ada-lovelace" in term.text
    assert "--force" in term.text
    assert "input is hidden" not in term.text
    assert store.read_active().unwrap() == TOKEN

    term = Terminal.hub_auth("login", "--force", "--endpoint", hub.url)
    term.paste_token_login()
    term.child.sendline(OTHER)
    term.child.expect(GIT_PROMPT)
    term.child.sendline("n")
    assert term.finish() == 0, term.text
    assert "logged in as charles-b" in term.text
    assert store.read_active().unwrap() == OTHER
    assert TOKEN not in term.text
    assert OTHER not in term.text


def test_login_prompts_again_when_the_active_token_is_revoked(
    hub: FakeHub, store: TokenStore
) -> None:
    store.save("ada-workstation", TOKEN)
    hub.revoke(TOKEN)
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    term.paste_token_login()
    term.child.sendline(OTHER)
    term.child.expect(GIT_PROMPT)
    term.child.sendline("n")
    assert term.finish() == 0, term.text
    assert store.read_active().unwrap() == OTHER


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_login_answer_yes_stores_a_git_credential(
    hub: FakeHub, store: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    subprocess.run(["git", "config", "--global", "credential.helper", "store"], check=True)
    term = Terminal.hub_auth("login", "--endpoint", hub.url)
    term.paste_token_login()
    term.child.sendline(TOKEN)
    term.child.expect(GIT_PROMPT)
    term.child.sendline("y")
    assert term.finish() == 0, term.text
    assert TOKEN not in term.text
    credentials = (Path(os.environ["HOME"]) / ".git-credentials").read_text()
    assert TOKEN in credentials


@pytest.mark.skipif(shutil.which("stty") is None, reason="stty is not installed")
def test_ctrl_c_at_the_prompt_restores_the_terminal(hub: FakeHub, store: TokenStore) -> None:
    # A shell runs `stty -a` after hub-auth on the same terminal: echo must be back on.
    # (`trap :` keeps the shell alive through Ctrl-C; unlike ignoring the signal, a trap is
    # not inherited, so Python still gets KeyboardInterrupt.)
    script = f'trap : INT; "{sys.executable}" -m hub_auth.cli login --endpoint {hub.url}; stty -a'
    term = Terminal("-c", script, program="/bin/sh")
    term.paste_token_login()
    assert term.child.waitnoecho(timeout=5)
    term.child.sendintr()
    assert term.finish() == 0, term.text  # the status of stty
    assert "Aborted!" in term.text
    assert re.search(r"(?<![\w-])echo(?![\w-])", term.text.split("Aborted!", 1)[1]), term.text
    assert not store.token_path.exists()


def test_switch_asks_which_token(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    term = Terminal.hub_auth("switch")
    term.child.expect(r"Number of the token to activate: ")
    assert "1. * ada-workstation" in term.text
    assert "2.   charles-laptop" in term.text
    term.child.sendline("3")  # out of range: asked again
    term.child.expect(r"Number of the token to activate: ")
    term.child.sendline("2")
    assert term.finish() == 0, term.text
    assert "switched to 'charles-laptop'" in term.text
    assert store.read_active().unwrap() == OTHER
    assert TOKEN not in term.text
    assert OTHER not in term.text


def test_switch_with_nothing_stored(store: TokenStore) -> None:
    term = Terminal.hub_auth("switch")
    assert term.finish() == 1
    assert "no tokens are stored" in term.text


def test_colour_on_a_real_terminal_unless_no_color(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("laptop", TOKEN).unwrap()
    term = Terminal.hub_auth("switch", "--token-name", "laptop")
    assert term.finish() == 0, term.text
    assert "\x1b[32m" in term.text  # the green check mark
    failed = Terminal.hub_auth("switch", "--token-name", "nope")
    assert failed.finish() == 1
    assert "\x1b[31m" in failed.text  # the red Error:
    assert "✗" in failed.text  # and its cross, as successes get a check mark

    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal.hub_auth("switch", "--token-name", "nope")
    assert plain.finish() == 1
    assert "\x1b[" not in plain.text
    assert "Error: " in plain.text
    assert "✗ Error: " in plain.text  # a terminal still gets the mark, without colour
