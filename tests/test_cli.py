"""The ``hub-auth`` command: every command and error path, with click's runner and FakeHub.

Each test gets a temporary HF_HOME and HOME (conftest) and, through ``hub``, a FakeHub
serving from a background thread with HF_ENDPOINT pointing at it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import hub_auth.cli._demo
from hub_auth import __version__
from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("cli-ada")
OTHER = make_token("cli-charles")
UNKNOWN = make_token("cli-nobody")
FULL_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")

requires_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake_hub.add_token(
        TOKEN,
        FakeUser(
            name="ada-lovelace",
            fullname="Ada Lovelace",
            email="ada@example.com",
            orgs=["analytical-engines"],
            token_name="ada-workstation",
        ),
    )
    fake_hub.add_token(OTHER, FakeUser(name="charles-b", token_name="charles-laptop", role="read"))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    return fake_hub


@pytest.fixture
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME (from conftest) with git's plain-file ``store`` helper; cwd outside any repo."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    home = Path(os.environ["HOME"])
    subprocess.run(["git", "config", "--global", "credential.helper", "store"], check=True)
    return home


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    # Whatever happened, it must never be a traceback.
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def assert_masked(result: Result, *tokens: str) -> None:
    for token in tokens:
        assert token not in result.output


def git_fill(url: str) -> str:
    done = subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={url}\nusername=hf_user\n\n",
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


# -- global options ----------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"hub-auth, version {__version__}\n"


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("login", "logout", "whoami", "token", "list", "switch", "demo"):
        assert command in result.stdout


def test_malformed_endpoint_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "not a url")
    result = run("whoami")
    assert result.exit_code == 1
    assert "endpoint must be an http(s) URL" in result.stderr
    assert "(from HF_ENDPOINT)" in result.stderr
    result = run("--endpoint", "ftp://example.com", "whoami")
    assert result.exit_code == 1
    assert "(from --endpoint)" in result.stderr


def test_global_and_command_endpoint(fake_hub: FakeHub, store: TokenStore) -> None:
    fake_hub.add_token(TOKEN, name="ada-lovelace", token_name="ada-workstation")
    # No HF_ENDPOINT here: without an option the default Hub would be asked.
    assert run("--endpoint", fake_hub.url, "login", "--token", TOKEN).exit_code == 0
    result = run("whoami", "--endpoint", fake_hub.url)
    assert result.exit_code == 0
    assert "ada-lovelace" in result.stdout
    # The subcommand's option wins over the group's.
    result = run("--endpoint", "http://127.0.0.1:9", "whoami", "--endpoint", fake_hub.url)
    assert result.exit_code == 0
    assert fake_hub.request_count == 3


def test_usage_error_exits_2() -> None:
    result = run("login", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


# -- login ---------------------------------------------------------------------------------


def test_login_with_token(hub: FakeHub, store: TokenStore) -> None:
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert "logged in as ada-lovelace" in result.stdout
    assert "'ada-workstation'" in result.stdout
    assert store.read_active().unwrap() == TOKEN
    assert store.get_token_by_name("ada-workstation").unwrap() == TOKEN
    assert_masked(result, TOKEN)


def test_login_accepts_hf_spelling_of_git_flag(hub: FakeHub) -> None:
    result = run("login", "--token", TOKEN, "--add-to-git-credential")
    assert result.exit_code == 0, result.output


def test_login_reads_token_from_stdin(hub: FakeHub, store: TokenStore) -> None:
    result = run("login", "--token", "-", input=f"  {TOKEN}\n")
    assert result.exit_code == 0, result.output
    assert store.read_active().unwrap() == TOKEN
    assert_masked(result, TOKEN)


def test_login_token_dash_with_empty_stdin(hub: FakeHub) -> None:
    result = run("login", "--token", "-", input="\n")
    assert result.exit_code == 1
    assert "--token was given but standard input held no token" in result.stderr


def test_login_strips_whitespace_around_the_token(hub: FakeHub, store: TokenStore) -> None:
    assert run("login", "--token", f" {TOKEN}\n").exit_code == 0
    assert store.read_active().unwrap() == TOKEN
    result = run("login", "--token", "  ")
    assert result.exit_code == 1
    assert "the token is empty" in result.stderr


def test_login_rejected_token_stores_nothing(hub: FakeHub, store: TokenStore) -> None:
    result = run("login", "--token", UNKNOWN)
    assert result.exit_code == 1
    assert "the Hub rejected the token" in result.stderr
    assert "Nothing was stored" in result.stderr
    assert result.stdout == ""
    assert not store.token_path.exists()
    assert not store.stored_tokens_path.exists()
    assert_masked(result, UNKNOWN)


def test_login_malformed_token(hub: FakeHub) -> None:
    result = run("login", "--token", "hf_has space")
    assert result.exit_code == 1
    assert "invalid token" in result.stderr
    assert hub.request_count == 0


def test_login_forbidden(hub: FakeHub) -> None:
    hub.forbid(TOKEN, message="Your organization requires fine-grained tokens")
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 1
    assert "requires fine-grained tokens" in result.stderr


def test_login_hub_unreachable(monkeypatch: pytest.MonkeyPatch, store: TokenStore) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 1
    assert "could not reach the Hub" in result.stderr
    assert not store.token_path.exists()


def test_login_offline(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in result.stderr
    assert hub.request_count == 0


def test_login_without_token_and_terminal(hub: FakeHub, store: TokenStore) -> None:
    result = run("login", input="")
    assert result.exit_code == 1
    assert "not a terminal" in result.stderr
    assert "--token" in result.stderr
    assert not store.token_path.exists()


def test_login_with_hf_token_set_still_stores_and_says_so(
    hub: FakeHub, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", OTHER)
    result = run("login", "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert store.read_active().unwrap() == TOKEN
    assert "note: the environment variable HF_TOKEN is set and overrides" in result.stderr
    assert_masked(result, TOKEN, OTHER)


@requires_git
def test_login_git_credentials_without_helper(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("login", "--token", TOKEN, "--add-to-git-credentials")
    assert result.exit_code == 0, result.output
    assert "git config --global credential.helper store" in result.stderr
    assert_masked(result, TOKEN)


@requires_git
def test_login_and_logout_round_trip_through_git(
    hub: FakeHub, git_home: Path, store: TokenStore
) -> None:
    result = run("login", "--token", TOKEN, "--add-to-git-credentials")
    assert result.exit_code == 0, result.output
    assert f"password={TOKEN}" in git_fill(hub.url)
    assert_masked(result, TOKEN)
    result = run("logout")
    assert result.exit_code == 0, result.output
    assert TOKEN not in git_fill(hub.url)
    assert TOKEN not in (git_home / ".git-credentials").read_text()


# -- whoami --------------------------------------------------------------------------------


def test_whoami(hub: FakeHub, store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("whoami")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ada-lovelace (Ada Lovelace) <ada@example.com>"
    assert "orgs:     analytical-engines" in result.stdout
    assert "token:    ada-workstation, role write" in result.stdout
    assert f"from:     the token file {store.token_path}" in result.stdout
    assert f"endpoint: {hub.url}" in result.stdout
    assert_masked(result, TOKEN)


def test_whoami_json(hub: FakeHub, store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("whoami", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["username"] == "ada-lovelace"
    assert body["email"] == "ada@example.com"
    assert [org["name"] for org in body["orgs"]] == ["analytical-engines"]
    assert body["token"]["display_name"] == "ada-workstation"
    assert_masked(result, TOKEN)


DOCS_CLI = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _documented_keys(row: str) -> list[str]:
    """The backquoted keys of one row of docs/cli.md's whoami --json table."""
    for line in DOCS_CLI.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{row}`"):
            value = line.split("|")[2]  # "a list of objects: `name`, ..." (keys after the colon)
            return re.findall(r"`([a-z_]+)`", value.split(":", 1)[1])
    raise AssertionError(f"docs/cli.md has no row for {row!r}")


def test_whoami_json_keys_are_the_documented_ones(hub: FakeHub, store: TokenStore) -> None:
    # docs/cli.md lists whoami --json's keys: the output must have exactly those, and the
    # docs' jq example must read one of them.
    store.save("ada-workstation", TOKEN)
    body = json.loads(run("whoami", "--json").stdout)
    docs = DOCS_CLI.read_text(encoding="utf-8")
    table = [line for line in docs.splitlines() if line.startswith("| `")]
    top = [key for line in table for key in re.findall(r"`([a-z_]+)`", line.split("|")[1])]
    assert sorted(top) == sorted(body)
    assert sorted(_documented_keys("orgs")) == sorted(body["orgs"][0])
    assert sorted(_documented_keys("token")) == sorted(body["token"])
    for key in re.findall(r"hub-auth whoami --json \| jq -r \.(\w+)", docs):
        assert key in body
    assert "Hub's answer" not in run("whoami", "--help").stdout


def test_whoami_uses_hf_token(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", OTHER)
    result = run("whoami")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("charles-b")
    assert "from:     HF_TOKEN" in result.stdout


def test_whoami_not_logged_in(hub: FakeHub) -> None:
    result = run("whoami")
    assert result.exit_code == 1
    assert "not logged in: run `hub-auth login`" in result.stderr
    assert "hub-auth login" in result.stderr
    assert hub.request_count == 0


def test_whoami_revoked_token(hub: FakeHub, store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    hub.revoke(TOKEN)
    result = run("whoami")
    assert result.exit_code == 1
    assert "the Hub rejected the token" in result.stderr
    assert "status 401" in result.stderr
    assert "run `hub-auth login`" in result.stderr
    assert_masked(result, TOKEN)


def test_whoami_rate_limited(hub: FakeHub, store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    hub.rate_limit_next(count=10, retry_after=300)
    result = run("whoami")
    assert result.exit_code == 1
    assert "rate limiting" in result.stderr


# -- token ---------------------------------------------------------------------------------


@pytest.mark.prints_token
def test_token_prints_exactly_the_token(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("token")
    assert result.exit_code == 0
    assert result.stdout == f"{TOKEN}\n"
    assert result.stderr == ""


@pytest.mark.prints_token
def test_token_prefers_hf_token(store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save("ada-workstation", TOKEN)
    monkeypatch.setenv("HF_TOKEN", f"  {OTHER}\n")
    assert run("token").stdout == f"{OTHER}\n"


@pytest.mark.prints_token
def test_token_honours_hf_token_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere" / "my-token"
    path.parent.mkdir()
    path.write_text(f"{TOKEN}\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    assert run("token").stdout == f"{TOKEN}\n"


def test_token_when_not_logged_in(store: TokenStore) -> None:
    result = run("token")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "not logged in" in result.stderr
    assert str(store.token_path) in result.stderr


@pytest.mark.prints_token
def test_token_ignores_a_malformed_endpoint(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("ada-workstation", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "::garbage::")
    assert run("token").stdout == f"{TOKEN}\n"


def test_token_file_unreadable(store: TokenStore) -> None:
    store.token_path.parent.mkdir(parents=True)
    store.token_path.mkdir()  # a folder where the file should be
    result = run("token")
    assert result.exit_code == 1
    assert "cannot read the token file" in result.stderr


# -- list ----------------------------------------------------------------------------------


def test_list_empty(store: TokenStore) -> None:
    result = run("list")
    assert result.exit_code == 0
    assert "No tokens stored" in result.stdout
    assert run("list", "--json").stdout == "[]\n"


def test_list(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    result = run("list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "  name             token",
        f"* ada-workstation  hf_****{TOKEN[-4:]}",
        f"  charles-laptop   hf_****{OTHER[-4:]}",
    ]
    assert_masked(result, TOKEN, OTHER)


def test_list_json(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False, extra={"expires_at": "1893456000"})
    result = run("list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "name": "ada-workstation",
            "masked_token": f"hf_****{TOKEN[-4:]}",
            "active": True,
            "expires_at": None,
        },
        {
            "name": "charles-laptop",
            "masked_token": f"hf_****{OTHER[-4:]}",
            "active": False,
            "expires_at": "2030-01-01T00:00:00Z",
        },
    ]
    assert_masked(result, TOKEN, OTHER)


def test_list_json_is_what_list_tokens_gives(store: TokenStore) -> None:
    # `hub-auth list` avoids pydantic for speed: its JSON must still be StoredToken's.
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False, extra={"expires_at": "1893456000"})
    store.save("bad-expiry", UNKNOWN, activate=False, extra={"expires_at": "soon"})
    with store.stored_tokens_path.open("a") as file:
        file.write("[no-token-key]\nrefresh_token = r\n")
    expected = [entry.model_dump(mode="json") for entry in store.list_tokens().unwrap()]
    assert len(expected) == 4
    assert json.loads(run("list", "--json").stdout) == expected


def test_list_shows_expiry(store: TokenStore) -> None:
    store.save("oauth-ada", TOKEN, extra={"expires_at": "1893456000", "refresh_token": "r"})
    result = run("list")
    assert "expires" in result.stdout.splitlines()[0]
    assert "2030-01-01" in result.stdout


def test_list_notes_hf_token_and_unlisted_active_token(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.token_path.parent.mkdir(parents=True)
    store.token_path.write_text(TOKEN)  # a login from before stored_tokens existed
    monkeypatch.setenv("HF_TOKEN", OTHER)
    result = run("list", "--json")
    assert json.loads(result.stdout) == []
    assert "HF_TOKEN is set and overrides the token file" in result.stderr
    assert f"the active token (hf_****{TOKEN[-4:]}) is not among the stored tokens" in (
        result.stderr
    )
    assert_masked(result, TOKEN, OTHER)


def test_list_corrupt_file(store: TokenStore) -> None:
    store.stored_tokens_path.parent.mkdir(parents=True)
    store.stored_tokens_path.write_text(f"hf_token = {TOKEN}\n")
    result = run("list")
    assert result.exit_code == 1
    assert str(store.stored_tokens_path) in result.stderr
    assert "line 1" in result.stderr
    assert_masked(result, TOKEN)


def test_unexpected_os_error_is_one_line(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: TokenStore) -> None:
        raise PermissionError(13, "Permission denied", "/somewhere/stored_tokens")

    monkeypatch.setattr(TokenStore, "read_entries", broken)
    result = run("list")
    assert result.exit_code == 1
    assert result.stderr == "Error: Permission denied: /somewhere/stored_tokens\n"


# -- switch --------------------------------------------------------------------------------


def test_switch(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    result = run("switch", "--token-name", "charles-laptop")
    assert result.exit_code == 0, result.output
    assert "switched to 'charles-laptop'" in result.stdout
    assert store.read_active().unwrap() == OTHER
    assert_masked(result, TOKEN, OTHER)


def test_switch_unknown_name(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("switch", "--token-name", "nobody")
    assert result.exit_code == 1
    assert "no token named 'nobody'" in result.stderr
    assert "hub-auth list" in result.stderr
    assert store.read_active().unwrap() == TOKEN


def test_switch_without_name_and_terminal(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("switch", input="1\n")
    assert result.exit_code == 1
    assert "--token-name" in result.stderr


def test_switch_with_hf_token_set(store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save("ada-workstation", TOKEN, activate=False)
    monkeypatch.setenv("HF_TOKEN", OTHER)
    result = run("switch", "--token-name", "ada-workstation")
    assert result.exit_code == 0
    assert store.read_active().unwrap() == TOKEN
    assert "HF_TOKEN is set and overrides the token file" in result.stderr


@requires_git
def test_switch_adds_to_git_credentials(hub: FakeHub, git_home: Path, store: TokenStore) -> None:
    store.save("charles-laptop", OTHER)
    result = run("switch", "--token-name", "charles-laptop", "--add-to-git-credentials")
    assert result.exit_code == 0, result.output
    assert "token added to git credentials (helper: store)" in result.stdout
    assert f"password={OTHER}" in git_fill(hub.url)
    assert_masked(result, OTHER)


# -- logout --------------------------------------------------------------------------------


def test_logout_everything(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    result = run("logout")
    assert result.exit_code == 0, result.output
    assert "removed 'ada-workstation', 'charles-laptop' and the active token file" in (
        result.stdout
    )
    assert not store.token_path.exists()
    assert not store.stored_tokens_path.exists()


def test_logout_says_what_it_removed(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN, activate=False)
    assert run("logout").stdout == "✓ logged out: removed 'ada-workstation'\n"
    store.token_path.write_text(TOKEN)  # an active token that was never named
    assert run("logout").stdout == "✓ logged out: removed the active token file\n"
    assert not store.token_path.exists()


def test_logout_one_name(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    result = run("logout", "--token-name", "charles-laptop")
    assert result.exit_code == 0
    assert result.stdout == "✓ logged out of 'charles-laptop'\n"
    assert store.read_active().unwrap() == TOKEN
    result = run("logout", "--token-name", "ada-workstation")
    assert "it was the active token" in result.stdout
    assert not store.token_path.exists()


def test_logout_unknown_name(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    result = run("logout", "--token-name", "nobody")
    assert result.exit_code == 1
    assert "no token named 'nobody' is stored" in result.stderr
    assert store.read_active().unwrap() == TOKEN


def test_logout_when_not_logged_in(store: TokenStore) -> None:
    result = run("logout")
    assert result.exit_code == 0
    assert "Not logged in" in result.stdout


def test_logout_says_hf_token_still_works(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("ada-workstation", TOKEN)
    monkeypatch.setenv("HF_TOKEN", OTHER)
    result = run("logout")
    assert result.exit_code == 0
    assert not store.token_path.exists()
    assert "HF_TOKEN is still set: it still authenticates" in result.stderr


# -- demo ----------------------------------------------------------------------------------


def test_demo(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's environment must not interfere, nor be touched.
    monkeypatch.setenv("HF_TOKEN", "hf_garbageGarbageGarbage")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    result = run("demo")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith(("✓", "✗"))]
    assert len(steps) == 8
    assert all(step.startswith("✓") for step in steps)
    assert "✓ login: logged in as ada-lovelace (token stored as 'ada-workstation')" in lines
    assert lines[-1] == "Every step went as expected."
    assert FULL_TOKEN.search(result.output) is None
    assert not hf_home.exists()
    assert "GIT_CONFIG_GLOBAL" not in os.environ
    assert elapsed < 2.0


def test_demo_fails_when_a_step_misbehaves(monkeypatch: pytest.MonkeyPatch) -> None:
    class ForbiddingHub(FakeHub):
        async def start(self) -> None:
            await super().start()
            self.fail_next(403)

    monkeypatch.setattr(hub_auth.cli._demo, "FakeHub", ForbiddingHub)
    result = run("demo")
    assert result.exit_code == 1
    assert "✗ login: failed: the Hub refused the token" in result.stdout
    assert "whoami" not in result.stdout
    assert "the demo did not go as expected" in result.stderr


# -- a real process --------------------------------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).parent / "hub-auth"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub_auth.cli"]


def test_real_process_never_shows_the_token_except_in_token(hub: FakeHub, hf_home: Path) -> None:
    def call(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*_command(), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert "Traceback" not in done.stderr
        assert (done.returncode == 0) is ok, (args, done.stdout, done.stderr)
        return done

    outputs = [
        call("login", "--token", TOKEN),
        call("login", "--token", OTHER),
        call("whoami"),
        call("whoami", "--json"),
        call("list"),
        call("list", "--json"),
        call("switch", "--token-name", "ada-workstation"),
        call("login", "--token", UNKNOWN, ok=False),
        call("logout", "--token-name", "charles-laptop"),
    ]
    for done in outputs:
        for secret in (TOKEN, OTHER, UNKNOWN):
            assert secret not in done.stdout + done.stderr
    printed = call("token")
    assert printed.stdout == f"{TOKEN}\n"
    assert printed.stderr == ""
    call("logout")
    assert call("token", ok=False).stdout == ""
    assert not (hf_home / "token").exists()


# -- start-up: local commands never load the network stack ------------------------------------

_PROBE = """
import sys
from hub_auth.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("aiohttp", "hub_auth._client", "hub_auth._http", "pydantic")
                   if m in sys.modules)
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["token"],
        ["list"],
        ["list", "--json"],
        ["switch", "--token-name", "charles-laptop"],
        ["logout", "--token-name", "charles-laptop"],
        ["logout"],
    ],
)
def test_local_commands_do_not_import_aiohttp(args: list[str], store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    store.save("charles-laptop", OTHER, activate=False)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stderr


def test_importing_the_cli_is_light() -> None:
    code = (
        "import sys, hub_auth.cli; "
        "print(sorted(m for m in ('aiohttp', 'pydantic', 'anyio', 'filelock') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_token_does_not_import_pydantic(store: TokenStore) -> None:
    store.save("ada-workstation", TOKEN)
    code = (
        "import sys; from hub_auth.cli import main; main(['token'], standalone_mode=False); "
        "print('pydantic' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == f"{TOKEN}\n"
    assert done.stderr == "False\n"


def test_without_click_the_command_says_which_extra_to_install(tmp_path: Path) -> None:
    # A "click" that cannot be imported shadows the real one for this process only.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "click.py").write_text("raise ImportError('no click here')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.cli", "token"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "pip install 'hub_auth[cli]'" in done.stderr
    assert "Traceback" not in done.stderr
