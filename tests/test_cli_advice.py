"""`hub-auth whoami` tells a person at the terminal what to do, for the situation they are in.

A rejected HF_TOKEN cannot be fixed by `hub-auth login` (the variable overrides the file); a
rejected stored login can; with no token at all the advice is CLI advice, not library advice.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import FakeHub, make_token


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    return fake_hub


def whoami() -> Result:
    result = CliRunner().invoke(main, ["whoami"])
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    return result


def test_a_rejected_hf_token_says_to_fix_or_unset_it(
    hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A valid stored login exists: HF_TOKEN is what breaks it, and login would not help.
    TokenStore(hf_home / "token").save("laptop", hub.add_token(name="ada")).unwrap()
    monkeypatch.setenv("HF_TOKEN", make_token())

    output = whoami().output

    assert "The token in HF_TOKEN was rejected: fix it, or unset HF_TOKEN" in output
    assert "hub-auth login" not in output


def test_a_rejected_stored_token_says_to_log_in_again(hub: FakeHub, hf_home: Path) -> None:
    stale = hub.add_token(name="ada")
    TokenStore(hf_home / "token").save("laptop", stale).unwrap()
    hub.revoke(stale)

    output = whoami().output

    assert "was rejected: run `hub-auth login`" in output
    assert str(hf_home / "token") in output


def test_no_token_gets_cli_advice_not_library_advice(hub: FakeHub) -> None:
    output = whoami().output

    assert "not logged in: run `hub-auth login`, or set HF_TOKEN" in output
    assert "set_token" not in output and "token=" not in output
    assert hub.request_count == 0


def test_other_failures_are_reported_as_they_are(hub: FakeHub, hf_home: Path) -> None:
    TokenStore(hf_home / "token").save("laptop", hub.add_token(name="ada")).unwrap()
    hub.fail_next(503, count=10)

    output = whoami().output

    assert "503" in output or "server" in output.lower()
    assert "hub-auth login" not in output


@pytest.fixture
def hub_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """HF_ENDPOINT at a closed port on this machine: a Hub that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    return url


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["login", "--device"], None),
        (["login", "--token", "-"], make_token("down-login") + "\n"),
        (["whoami"], None),
    ],
    ids=["login --device", "login --token -", "whoami"],
)
def test_a_hub_that_is_down_gets_one_wording_in_every_command(
    hub_down: str, args: list[str], stdin: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Device login once said "could not reach the Hub at 127.0.0.1: Cannot connect to host
    # 127.0.0.1:8099 ssl:default [...]" while whoami said "... at http://127.0.0.1:8099:
    # connection refused": the same situation, one sentence, with scheme and port.
    monkeypatch.setenv("HF_TOKEN", make_token("down-whoami"))
    if args[0] == "login":
        monkeypatch.delenv("HF_TOKEN")
    result = CliRunner().invoke(main, args, input=stdin)

    assert result.exit_code == 1, result.output
    assert f"could not reach the Hub at {hub_down}: connection refused" in result.output
    assert "ssl:default" not in result.output
    assert "Cannot connect to host" not in result.output
    assert "Traceback" not in result.output


def test_a_malformed_hf_token_is_named_as_the_source(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "nonsense")

    output = whoami().output

    assert "The token in HF_TOKEN was refused: fix it, or unset HF_TOKEN" in output
    assert hub.request_count == 0


def test_a_malformed_token_file_is_named_as_the_source(hub: FakeHub, hf_home: Path) -> None:
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text("nonsense", encoding="utf-8")

    output = whoami().output

    assert (
        f"The token from the token file {hf_home / 'token'} was refused: run `hub-auth login`"
        in output
    )


def test_offline_says_what_to_unset(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", make_token("offline"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    assert "unset HF_HUB_OFFLINE to reach the Hub" in whoami().output
    assert hub.request_count == 0


def test_login_without_a_terminal_speaks_cli_not_python(hub: FakeHub) -> None:
    result = CliRunner().invoke(main, ["login"], input="")

    assert result.exit_code == 1, result.output
    assert "`hub-auth login --token -`" in result.output
    assert "`hub-auth login --device`" in result.output
    assert "login(token=" not in result.output
    assert "start_device_login()" not in result.output


def test_the_plain_http_warning_has_the_warning_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline: the client is built (and warns) but nothing is sent to the unreachable host.
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example.invalid")
    monkeypatch.setenv("HF_TOKEN", make_token("plain-http"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    lines = whoami().output.splitlines()

    warned = [line for line in lines if "uses plain http" in line]
    assert warned and all(line.startswith("warning: endpoint ") for line in warned), lines


def test_list_notes_the_hf_token_override_and_takes_endpoint(
    hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TokenStore(hf_home / "token").save("laptop", hub.add_token(name="ada")).unwrap()
    monkeypatch.setenv("HF_TOKEN", make_token("override"))

    result = CliRunner().invoke(main, ["list", "--endpoint", hub.url])

    assert result.exit_code == 0, result.output
    assert "* laptop" in result.stdout
    assert "note: the environment variable HF_TOKEN is set and overrides the token file" in (
        result.stderr
    )
    bad = CliRunner().invoke(main, ["list", "--endpoint", "ftp://hub"])
    assert bad.exit_code == 1 and "--endpoint" in bad.output


def test_login_help_describes_the_menu() -> None:
    # It once promised hidden input, while a terminal first gets the browser/paste menu.
    shown = " ".join(CliRunner().invoke(main, ["login", "--help"]).output.split())
    assert "with your browser (the default" in shown
    assert "paste a token (hidden input)" in shown
