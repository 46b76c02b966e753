"""``--format human|json|quiet`` on every command that prints, and colour only on a terminal.

``--json`` stays as an alias of ``--format json``. Colour (a green check mark, a red
``Error:``) is for a terminal: click strips it when the output is piped, and NO_COLOR
turns it off even on a terminal (CliRunner's ``color=True`` plays the terminal).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("format-ada")
ESC = "\x1b["


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake_hub.add_token(TOKEN, FakeUser(name="ada-lovelace", token_name="ada-workstation"))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    return fake_hub


@pytest.fixture
def stored(hf_home: Path) -> TokenStore:
    store = TokenStore(hf_home / "token")
    store.save("laptop", TOKEN).unwrap()
    return store


def run(*args: str, input: str | None = None, color: bool = False) -> Result:
    result = CliRunner().invoke(main, list(args), input=input, color=color)
    assert "Traceback" not in result.output
    return result


def test_whoami_formats(hub: FakeHub, stored: TokenStore) -> None:
    as_json = json.loads(run("whoami", "--format", "json").stdout)
    assert as_json == json.loads(run("whoami", "--json").stdout)
    assert as_json["username"] == "ada-lovelace"
    assert run("whoami", "--format", "quiet").stdout == "ada-lovelace\n"
    human = run("whoami", "--format", "human").stdout
    assert human.startswith("ada-lovelace (Ada Lovelace)\n  token:")


def test_list_formats(stored: TokenStore) -> None:
    assert run("list", "--format", "quiet").stdout == "laptop\n"
    assert [entry["name"] for entry in json.loads(run("list", "--json").stdout)] == ["laptop"]
    assert run("list", "--json", "--format", "human").stdout.startswith("[")  # the alias wins


def test_login_formats(hub: FakeHub, hf_home: Path) -> None:
    quiet = run("login", "--token", "-", "--format", "quiet", input=TOKEN + "\n")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == ""
    again = run("login", "--token", "-", "--format", "json", input=TOKEN + "\n")
    assert json.loads(again.stdout) == {
        "username": "ada-lovelace",
        "token_name": "ada-workstation",
        "kept_existing": False,
        "token_path": str(hf_home / "token"),
    }
    assert TOKEN not in again.output


def test_switch_and_logout_formats(stored: TokenStore) -> None:
    switched = json.loads(run("switch", "--token-name", "laptop", "--format", "json").stdout)
    assert switched["token_name"] == "laptop"
    assert switched["token"].startswith("hf_****") and TOKEN not in switched["token"]
    assert json.loads(run("logout", "--json").stdout) == {
        "removed": ["laptop"],
        "removed_active": True,
    }
    assert json.loads(run("logout", "--json").stdout) == {"removed": [], "removed_active": False}
    assert run("logout", "--format", "quiet").stdout == ""


def test_an_unknown_format_is_a_usage_error() -> None:
    result = run("list", "--format", "yaml")
    assert result.exit_code == 2
    assert "'human', 'json', 'quiet'" in result.output


def test_colour_on_a_terminal_only(stored: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal = run("switch", "--token-name", "laptop", color=True)
    assert on_terminal.stdout.startswith(f"{ESC}32m")  # a green check mark
    piped = run("switch", "--token-name", "laptop")
    assert ESC not in piped.output
    assert piped.stdout.startswith("✓ switched to 'laptop'")

    failed = run("switch", "--token-name", "nope", color=True)
    assert failed.exit_code == 1
    assert failed.stderr.startswith(f"{ESC}31m")  # a red Error:
    assert ESC not in run("switch", "--token-name", "nope").output

    monkeypatch.setenv("NO_COLOR", "1")
    assert ESC not in run("switch", "--token-name", "laptop", color=True).output
    assert ESC not in run("switch", "--token-name", "nope", color=True).output
