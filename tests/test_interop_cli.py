"""``hub-auth`` and the real ``huggingface_hub`` (its ``hf`` command) on the same login files.

Both run as subprocesses with ``HF_HOME`` in a temporary folder and ``HF_ENDPOINT`` pointing at
FakeHub: huggingface_hub reads its environment at import, so it cannot run in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub_auth.testing import FakeHub, FakeUser, make_token

pytest.importorskip("huggingface_hub")

TOKEN = make_token("interop-ada")
OTHER = make_token("interop-charles")
OAUTH = make_token("interop-oauth")
FAR_FUTURE = 1893456000  # 2030-01-01: far enough that huggingface_hub never tries a refresh


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_token(TOKEN, FakeUser(name="ada-lovelace", token_name="ada-workstation"))
    fake_hub.add_token(OTHER, FakeUser(name="charles-b", token_name="charles-laptop"))
    return fake_hub


@pytest.fixture
def env(hub: FakeHub, hf_home: Path) -> dict[str, str]:
    """The environment both tools run in: only the temporary HF_HOME and FakeHub."""
    environ = dict(os.environ)
    for name in ("HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN"):
        environ.pop(name, None)
    environ.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=hub.url,
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_COLOR="1",
    )
    return environ


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command[:3], done.stdout, done.stderr)
    return done


def hf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "hf"
    if not script.exists():
        pytest.skip("the `hf` command of huggingface_hub is not installed")
    return _run([str(script), *args], env)


def hub_auth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "hub_auth.cli", *args], env)


_PEER_STATE = """
import json
from huggingface_hub import get_token
from huggingface_hub.utils import get_stored_tokens
from huggingface_hub.utils._auth import _read_stored_tokens_full
print(json.dumps({"token": get_token(), "stored": get_stored_tokens(),
                  "full": _read_stored_tokens_full()}))
"""


def peer_state(env: dict[str, str]) -> dict[str, Any]:
    """What huggingface_hub itself reports about the login files."""
    state: dict[str, Any] = json.loads(_run([sys.executable, "-c", _PEER_STATE], env).stdout)
    return state


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(hub_auth(env, "list", "--json").stdout)
    return entries


def test_tokens_saved_by_hf_login_show_up_and_can_be_switched_to(env: dict[str, str]) -> None:
    hf(env, "auth", "login", "--token", TOKEN)
    hf(env, "auth", "login", "--token", OTHER)
    assert [(entry["name"], entry["active"]) for entry in listed(env)] == [
        ("ada-workstation", False),
        ("charles-laptop", True),
    ]
    assert hub_auth(env, "token").stdout == f"{OTHER}\n"

    hub_auth(env, "switch", "--token-name", "ada-workstation")
    assert peer_state(env)["token"] == TOKEN
    assert hf(env, "auth", "token").stdout.strip() == TOKEN
    assert "ada-lovelace" in hf(env, "auth", "whoami").stdout


def test_hub_auth_login_is_what_huggingface_hub_reads(env: dict[str, str]) -> None:
    hub_auth(env, "login", "--token", TOKEN)
    hub_auth(env, "login", "--token", OTHER)
    state = peer_state(env)
    assert state["token"] == OTHER
    assert state["stored"] == {"ada-workstation": TOKEN, "charles-laptop": OTHER}
    assert "charles-b" in hf(env, "auth", "whoami").stdout

    # And the other way round: hf switches, hub-auth sees it.
    hf(env, "auth", "switch", "--token-name", "ada-workstation")
    assert hub_auth(env, "token").stdout == f"{TOKEN}\n"
    assert [entry["name"] for entry in listed(env) if entry["active"]] == ["ada-workstation"]


def test_hub_auth_switch_and_logout_are_what_huggingface_hub_reads(env: dict[str, str]) -> None:
    hub_auth(env, "login", "--token", TOKEN)
    hub_auth(env, "login", "--token", OTHER)
    hub_auth(env, "switch", "--token-name", "ada-workstation")
    assert peer_state(env)["token"] == TOKEN

    hub_auth(env, "logout", "--token-name", "charles-laptop")
    state = peer_state(env)
    assert state["stored"] == {"ada-workstation": TOKEN}
    assert state["token"] == TOKEN

    hub_auth(env, "logout", "--token-name", "ada-workstation")  # the active one
    state = peer_state(env)
    assert state["stored"] == {}
    assert state["token"] is None

    hub_auth(env, "login", "--token", OTHER)
    hub_auth(env, "logout")
    assert peer_state(env) == {"token": None, "stored": {}, "full": {}}


def test_hf_logout_of_what_hub_auth_stored(env: dict[str, str]) -> None:
    hub_auth(env, "login", "--token", TOKEN)
    hub_auth(env, "login", "--token", OTHER)
    hf(env, "auth", "logout", "--token-name", "charles-laptop")
    assert [(entry["name"], entry["active"]) for entry in listed(env)] == [
        ("ada-workstation", False)
    ]
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.cli", "token"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "not logged in" in done.stderr


_SAVE_OAUTH = f"""
from huggingface_hub.utils._auth import _save_token
from huggingface_hub._login import _set_active_token
_save_token({OAUTH!r}, "oauth-grace-h", refresh_token="hf_oauth_refresh_secret",
            expires_at={FAR_FUTURE})
_set_active_token("oauth-grace-h", add_to_git_credential=False)
"""


def test_oauth_entries_keep_refresh_token_and_expiry(env: dict[str, str]) -> None:
    _run([sys.executable, "-c", _SAVE_OAUTH], env)
    oauth_entry = {
        "hf_token": OAUTH,
        "refresh_token": "hf_oauth_refresh_secret",
        "expires_at": str(FAR_FUTURE),
    }
    assert peer_state(env)["full"] == {"oauth-grace-h": oauth_entry}
    assert listed(env) == [
        {
            "name": "oauth-grace-h",
            "masked_token": f"hf_****{OAUTH[-4:]}",
            "active": True,
            "expires_at": "2030-01-01T00:00:00Z",
        }
    ]

    # Every kind of rewrite hub-auth does leaves the OAuth entry whole.
    hub_auth(env, "login", "--token", TOKEN)
    hub_auth(env, "login", "--token", OTHER)
    assert peer_state(env)["full"]["oauth-grace-h"] == oauth_entry
    hub_auth(env, "logout", "--token-name", "charles-laptop")
    assert peer_state(env)["full"]["oauth-grace-h"] == oauth_entry
    hub_auth(env, "switch", "--token-name", "oauth-grace-h")
    state = peer_state(env)
    assert state["full"] == {
        "ada-workstation": {"hf_token": TOKEN},
        "oauth-grace-h": oauth_entry,
    }
    assert state["token"] == OAUTH
    assert "2030-01-01" in hub_auth(env, "list").stdout
