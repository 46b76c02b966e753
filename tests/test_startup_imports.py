"""Start-up: what importing hub_auth and running each ``hub-auth`` command loads.

The commands that touch only local files (``token``, ``list``, ``switch``, ``logout``) must not
load the network stack, the models or the OAuth flows; ``from hub_auth import HubAuth`` must
not load aiohttp or the models; ``whoami`` must not load git, anyio or the device login.
Each case runs in a fresh interpreter (a subprocess) and looks at ``sys.modules``: assertions
about modules, not timings, so they hold on a busy machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from hub_auth._login.store import TokenStore
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("startup-ada")
OTHER = make_token("startup-bob")

NETWORK_AND_MODELS = ("aiohttp", "pydantic", "hub_auth._http", "hub_auth._models")
FLOWS = (
    "hub_auth._oauth.device",
    "hub_auth._oauth.exchange",
    "hub_auth._oauth.refresh",
    "hub_auth._login.git",
)
WATCHED = (*NETWORK_AND_MODELS, *FLOWS, "asyncio", "anyio", "filelock", "hub_auth._cache")


def _loaded(code: str) -> set[str]:
    """The modules of WATCHED that ``code`` left in ``sys.modules`` (run in a new process)."""
    probe = textwrap.dedent(
        f"""
        import json, sys
        {textwrap.indent(textwrap.dedent(code), "        ").strip()}
        print(json.dumps(sorted(set({WATCHED!r}) & set(sys.modules))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return set(loaded)


def _after_command(*args: str) -> set[str]:
    """The watched modules loaded once ``hub-auth ARGS`` has run (successfully)."""
    return _loaded(
        f"""
        from hub_auth.cli import main
        try:
            main({list(args)!r})
        except SystemExit as exit:
            assert not exit.code, exit.code
        """
    )


def test_import_hub_auth_loads_nothing_heavy() -> None:
    assert _loaded("import hub_auth") == set()


def test_importing_the_client_loads_neither_aiohttp_nor_the_models() -> None:
    loaded = _loaded("from hub_auth import HubAuth, HubAuthError, Ok, Err")
    assert not loaded & {"aiohttp", "hub_auth._http", "hub_auth._models", *FLOWS}, loaded


def test_import_hub_auth_sync_loads_no_aiohttp() -> None:
    loaded = _loaded("import hub_auth.sync")
    assert not loaded & {"aiohttp", "hub_auth._http", *FLOWS}, loaded


@pytest.fixture
def two_logins(store: TokenStore) -> TokenStore:
    store.save("ada", TOKEN).unwrap()
    store.save("bob", OTHER, activate=False).unwrap()
    return store


@pytest.mark.parametrize(
    "args",
    [
        ["token"],
        ["list"],
        ["list", "--format", "json"],
        ["switch", "--token-name", "bob"],
        ["logout", "--token-name", "bob"],  # not the active one: git is not involved
    ],
    ids=lambda args: " ".join(args),
)
def test_local_commands_load_no_network_stack(two_logins: TokenStore, args: list[str]) -> None:
    loaded = _after_command(*args)
    assert not loaded & {*NETWORK_AND_MODELS, *FLOWS, "asyncio", "anyio"}, loaded


def test_logout_clears_git_credentials_without_an_event_loop(two_logins: TokenStore) -> None:
    loaded = _after_command("logout")  # everything: git is asked to forget the credential
    assert "hub_auth._login.git" in loaded  # the probe sees what it should
    assert not loaded & {*NETWORK_AND_MODELS, "asyncio", "anyio"}, loaded


def test_token_and_list_do_not_even_load_the_file_lock(two_logins: TokenStore) -> None:
    assert "filelock" not in _after_command("token")
    assert "filelock" not in _after_command("list")


def test_whoami_loads_neither_git_nor_the_device_login(
    fake_hub: FakeHub, two_logins: TokenStore
) -> None:
    fake_hub.add_token(TOKEN, FakeUser(name="ada"))
    loaded = _after_command("whoami", "--endpoint", fake_hub.url)
    assert "aiohttp" in loaded  # the probe sees what it should
    assert not loaded & {"hub_auth._oauth.device", "hub_auth._login.git", "anyio"}, loaded
