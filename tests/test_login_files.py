"""The local login operations shared by ``HubAuth`` and ``hub-auth``: one rule, two callers.

Each rule is checked through both callers (the real CLI via click's runner, and ``HubAuth``),
against real login files and, for git credentials, real git with its ``store`` helper.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from hub_auth import HubAuth, LogoutInfo, StoredToken, SwitchInfo
from hub_auth._login.files import list_logins, remove_login, switch_login
from hub_auth._login.git import approve
from hub_auth._login.prompt import terminal_text
from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import make_token

TOKEN = make_token("files-ada")
OTHER = make_token("files-charles")
ENDPOINT = "https://hub.example"  # nothing here talks to it

requires_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def store(hf_home: Path) -> TokenStore:
    store = TokenStore(hf_home / "token")
    assert store.save("work", TOKEN).is_ok()
    assert store.save("spare", OTHER, activate=False).is_ok()
    return store


def logout_with_cli(name: str | None) -> list[str]:
    args = ["--endpoint", ENDPOINT, "logout", *(["--token-name", name] if name else [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return [line[len("note: ") :] for line in result.stderr.splitlines()]


def logout_with_client(name: str | None) -> list[str]:
    async def run() -> list[str]:
        async with HubAuth(endpoint=ENDPOINT) as auth:
            return list((await auth.logout(name)).unwrap().notes)

    return asyncio.run(run())


CALLERS: dict[str, Callable[[str | None], list[str]]] = {
    "cli": logout_with_cli,
    "client": logout_with_client,
}


# -- one entry type ----------------------------------------------------------------------------


def test_the_cli_lists_the_public_stored_token_type(store: TokenStore) -> None:
    public = store.list_tokens().unwrap()
    assert list_logins(store, {}).unwrap().tokens == tuple(public)
    assert all(type(token) is StoredToken for token in public)
    listed = CliRunner().invoke(main, ["list", "--json"])
    assert json.loads(listed.stdout) == [token.model_dump(mode="json") for token in public]


def test_switch_and_logout_return_the_public_types(store: TokenStore) -> None:
    switched = switch_login(store, "spare", {}).unwrap()
    assert type(switched) is SwitchInfo
    assert switched == SwitchInfo(token_name="spare")
    assert switched.token == OTHER
    assert switched.model_dump() == {"token_name": "spare", "notes": ()}
    logged_out = remove_login(store, "work", {}).unwrap()
    assert type(logged_out) is LogoutInfo
    assert logged_out.model_dump(mode="json") == {
        "removed": ["work"],
        "removed_active": False,
        "notes": [],
    }


def test_outcomes_are_frozen_and_hashable(store: TokenStore) -> None:
    token = store.list_tokens().unwrap()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.active = False  # type: ignore[misc]
    assert hash(token) == hash(dataclasses.replace(token))
    assert not hasattr(token, "__dict__")  # slotted: small, and no attribute can be added


def test_shared_modules_load_neither_aiohttp_nor_pydantic() -> None:
    code = (
        "import sys, hub_auth._login.files, hub_auth._login.prompt; "
        "print(sorted(m for m in ('aiohttp', 'pydantic', 'anyio', 'click', 'filelock') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_outcomes_never_show_a_token(store: TokenStore) -> None:
    listed = list_logins(store, {}).unwrap()
    logged_out = remove_login(store, None, {}).unwrap()
    for shown in (repr(listed), repr(logged_out)):
        assert TOKEN not in shown
        assert OTHER not in shown
    assert set(logged_out.removed_tokens) == {TOKEN, OTHER}


# The login layer, lowest first: a module imports only those before it (at the top, in
# functions and under TYPE_CHECKING alike), so there is no cycle and no upward import.
LAYERS = [
    "hub_auth._login.outcomes",
    "hub_auth._login.store",
    "hub_auth._login.git",
    "hub_auth._login.files",
    "hub_auth._login.prompt",
    "hub_auth._client",
    "hub_auth.cli._demo",
    "hub_auth.cli",
]


def imported_modules(module: str) -> set[str]:
    source = Path(__file__).resolve().parents[1].joinpath(*module.split("."))
    path = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("position", range(len(LAYERS)))
def test_the_login_layer_imports_only_downwards(position: int) -> None:
    module = LAYERS[position]
    upward = imported_modules(module) & set(LAYERS[position:])
    assert upward == set(), f"{module} imports {sorted(upward)}"


def test_the_cli_calls_no_private_method_of_the_client() -> None:
    # The browser login at a terminal has one home (_client.interactive_device_login).
    cli = Path(__file__).resolve().parents[1] / "hub_auth" / "cli"
    private = [
        f"{path.name}:{node.lineno} auth.{node.attr}"
        for path in sorted(cli.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "auth"
        and node.attr.startswith("_")
    ]
    assert private == []


# -- the same rules through both callers --------------------------------------------------------


@pytest.fixture
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME (from conftest) with git's plain-file ``store`` helper; cwd outside any repo."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    subprocess.run(["git", "config", "--global", "credential.helper", "store"], check=True)
    return Path(os.environ["HOME"])


def git_has(token: str, git_home: Path) -> bool:
    credentials = git_home / ".git-credentials"
    return credentials.exists() and token in credentials.read_text()


@requires_git
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_git_credential_goes_only_with_the_active_token(
    caller: str, store: TokenStore, git_home: Path
) -> None:
    logout = CALLERS[caller]
    assert anyio.run(approve, ENDPOINT, TOKEN).unwrap().stored
    logout("spare")  # not the active token: git keeps the Hub's credential
    assert git_has(TOKEN, git_home)
    logout("work")  # the active one: its git credential goes too
    assert not git_has(TOKEN, git_home)
    store.save("work", TOKEN)
    assert anyio.run(approve, ENDPOINT, TOKEN).unwrap().stored
    logout(None)  # everything
    assert not git_has(TOKEN, git_home)


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_git_failure_is_a_note_and_the_logout_still_happens(
    caller: str, store: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-gitconfig"
    broken.write_text("[credential\n")  # git cannot parse it
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(broken))
    monkeypatch.setenv("HF_TOKEN", OTHER)
    notes = CALLERS[caller](None)
    assert not store.token_path.exists()
    if shutil.which("git") is not None:
        assert notes[0].startswith("git credentials were not cleared")
    assert "HF_TOKEN is still set" in notes[-1]


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_env_note_after_logout(
    caller: str, store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", OTHER)
    notes = CALLERS[caller]("spare")
    assert notes == [
        "the environment variable HUGGING_FACE_HUB_TOKEN is still set: it still "
        "authenticates; unset it to log out completely"
    ]


async def test_client_with_read_env_false_ignores_environment_tokens(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", OTHER)
    async with HubAuth(endpoint=ENDPOINT, token_path=store.token_path, read_env=False) as auth:
        assert (await auth.switch_token("spare")).unwrap().notes == ()
        assert list((await auth.logout("spare")).unwrap().notes) == []
    async with HubAuth(endpoint=ENDPOINT, token_path=store.token_path) as auth:
        assert "HF_TOKEN is set" in (await auth.switch_token("work")).unwrap().notes[0]


# -- terminal text -------------------------------------------------------------------------------


def test_terminal_text_escapes_every_control_character() -> None:
    controls = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x202E, 0x2067]))
    shown = terminal_text(f"a{controls}b")
    assert shown.isprintable()
    assert shown.startswith("a\\x00\\x01") and shown.endswith("\\u202e\\u2067b")
    assert "\\x1b" in shown and "\\x9b" in shown and "\\x7f" in shown
    assert terminal_text(shown) == shown  # escaping twice changes nothing


def test_terminal_text_keeps_ordinary_text_and_masks_tokens() -> None:
    assert terminal_text("Zoë Ōtsuka 日本 — ok") == "Zoë Ōtsuka 日本 — ok"
    assert terminal_text(f"token {TOKEN}!") == f"token hf_****{TOKEN[-4:]}!"
