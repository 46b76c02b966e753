"""What the ``hub-auth`` command prints: no token it was not asked for, no endpoint secrets,
no terminal escape sequences from the Hub or from ``stored_tokens``.

Each test runs the real command (click's runner or a subprocess) against FakeHub and real
login files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("out-ada")
OTHER = make_token("out-charles")
# OSC 52 asks the terminal to put text on the clipboard; OSC 0 sets the window title; CSI 2J
# clears the screen; U+009B is the one-byte (C1) form of CSI; U+202E reverses the text shown.
CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
TITLE = "\x1b]0;owned\x1b\\"
HOSTILE = f"Ada{CLIPBOARD}{TITLE}\x1b[2J\x9b31m\x7f\x00\u202eLovelace"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def assert_no_control(text: str) -> None:
    assert CONTROL.search(text) is None, repr(text)


@pytest.fixture
def hostile_hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake_hub.add_token(
        TOKEN,
        FakeUser(
            name="ada-lovelace",
            fullname=HOSTILE,
            email=f"ada{CLIPBOARD}@example.com",
            orgs=[f"engines{TITLE}"],
            token_name=f"work{CLIPBOARD}station",
            role=f"write{TITLE}",
        ),
    )
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    return fake_hub


# -- 17.8: tokens the command was not asked to print -----------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["login", TOKEN],  # the token as a positional argument, by mistake
        [TOKEN],  # as a command name
        ["whoami", TOKEN],
        ["logout", TOKEN],
        ["switch", "--token-name", "x", TOKEN],
        ["--endpoint", "https://huggingface.co", TOKEN, "login"],
        [f"--{TOKEN}"],  # as an option name
        ["login", f"--token={TOKEN}", "--force=yes"],
    ],
)
def test_usage_errors_mask_a_token(args: list[str], fake_hub: FakeHub) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert TOKEN not in result.output
    assert "Error" in result.stderr


def test_bare_command_still_shows_its_help() -> None:
    result = run()
    assert result.exit_code == 2
    assert "Commands:\n" in result.output
    assert "\\x0a" not in result.output


def test_control_characters_in_arguments_are_escaped() -> None:
    result = run(f"bad{TITLE}")
    assert result.exit_code == 2
    assert_no_control(result.output)
    assert "No such command 'bad\\x1b]0;owned" in result.stderr


def test_positional_token_gets_advice() -> None:
    result = run("login", TOKEN)
    assert TOKEN not in result.output
    assert f"hf_****{TOKEN[-4:]}" in result.stderr
    assert "--token -" in result.stderr


def test_usage_errors_in_a_real_process_mask_a_token() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.cli", "login", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert TOKEN not in done.stdout + done.stderr
    assert "hf_****" in done.stderr


def test_literal_token_option_gets_a_note(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add_token(TOKEN, FakeUser(name="ada-lovelace", token_name="ada-workstation"))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 0
    assert "`--token -` reads it from standard input" in result.stderr
    assert "process list" in result.stderr
    assert TOKEN not in result.output
    # Read from standard input: no note.
    result = run("login", "--token", "-", input=TOKEN + "\n")
    assert result.exit_code == 0
    assert "process list" not in result.stderr


def test_menu_answer_is_not_echoed_back(store: TokenStore) -> None:
    # The menu is for terminals only; its prompt must not repeat a wrong answer either.
    from hub_auth._login.prompt import menu_choice

    with pytest.raises(Exception, match="a number from 1 to 2") as caught:
        menu_choice(TOKEN, 2)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("https://ada-login:s3cret@hub.example:8443/p?x=1#f", "https://hub.example:8443"),
        ("https://hub.example/path?token=s3cret", "https://hub.example"),
        ("https://hub.example/#s3cret", "https://hub.example"),
        ("ftp://ada-login:s3cret@hub.example/", "ftp://hub.example"),
        ("http://[::1]:9/?s3cret", "http://[::1]:9"),
    ],
)
def test_endpoint_errors_show_only_the_origin(
    endpoint: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run("--endpoint", endpoint, "whoami")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "ada-login" not in result.output
    assert repr(shown) in result.stderr
    assert "(from --endpoint)" in result.stderr
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    result = run("login", "--token", "-", input=TOKEN)
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "(from HF_ENDPOINT)" in result.stderr


@pytest.mark.parametrize("endpoint", ["s3cret@hub", f"{TOKEN}", "hub.example?s3cret"])
def test_endpoint_that_is_no_url_is_not_repeated(endpoint: str) -> None:
    result = run("--endpoint", endpoint, "whoami")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert TOKEN not in result.output
    assert "endpoint must be an http(s) URL" in result.stderr


def test_endpoint_without_scheme_is_shown_to_help() -> None:
    result = run("--endpoint", "huggingface.co", "whoami")
    assert result.exit_code == 1
    assert "'huggingface.co'" in result.stderr


# -- 17.10: control characters from the Hub and from stored_tokens ---------------------------


def test_whoami_replaces_control_characters(hostile_hub: FakeHub, store: TokenStore) -> None:
    store.save("ada", TOKEN)
    result = run("whoami")
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    assert "Ada\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in result.stdout
    assert "\\u202eLovelace" in result.stdout
    assert "engines\\x1b]0;owned" in result.stdout


def test_whoami_json_escapes_control_characters(hostile_hub: FakeHub, store: TokenStore) -> None:
    store.save("ada", TOKEN)
    result = run("whoami", "--json")
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    assert json.loads(result.stdout)["fullname"] == HOSTILE


def test_login_replaces_control_characters(hostile_hub: FakeHub, store: TokenStore) -> None:
    result = run("login", "--token", "-", input=TOKEN)
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    assert "logged in as ada-lovelace" in result.stdout
    # Stored as the Hub named it: only the display is escaped.
    assert store.get_token_by_name(f"work{CLIPBOARD}station").unwrap() == TOKEN


def test_hub_error_message_replaces_control_characters(
    hostile_hub: FakeHub, store: TokenStore
) -> None:
    store.save("ada", TOKEN)
    hostile_hub.fail_next(403, body=json.dumps({"error": f"blocked by policy{CLIPBOARD}"}))
    result = run("whoami")
    assert result.exit_code == 1
    assert_no_control(result.output)
    assert "blocked by policy" in result.stderr


def _hostile_store(store: TokenStore) -> str:
    name = f"evil{CLIPBOARD}{TITLE}\x9b2J"
    store.save(name, TOKEN)
    store.save("plain", OTHER, activate=False)
    return name


def test_list_replaces_control_characters_in_names(store: TokenStore) -> None:
    _hostile_store(store)
    result = run("list")
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    assert "* evil\\x1b]52;c;" in result.stdout


def test_list_json_escapes_control_characters(store: TokenStore) -> None:
    name = _hostile_store(store)
    result = run("list", "--json")
    assert_no_control(result.output)
    assert [entry["name"] for entry in json.loads(result.stdout)] == [name, "plain"]


def test_switch_and_logout_replace_control_characters(store: TokenStore) -> None:
    name = _hostile_store(store)
    result = run("switch", "--token-name", name)
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    result = run("logout", "--token-name", name)
    assert result.exit_code == 0, result.output
    assert_no_control(result.output)
    assert "evil\\x1b]52" in result.stdout
    result = run("logout", "--token-name", name)
    assert result.exit_code == 1
    assert_no_control(result.output)


def test_a_name_shaped_like_a_token_is_masked(store: TokenStore) -> None:
    # A token pasted where a name belongs: `list` shows it masked, like every token.
    store.save(OTHER, TOKEN)
    result = run("list")
    assert result.exit_code == 0
    assert OTHER not in result.output
    assert f"hf_****{OTHER[-4:]}" in result.stdout
