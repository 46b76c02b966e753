"""Refresh of stored OAuth tokens shared with the real huggingface_hub.

huggingface_hub reads its environment at import, so it runs in subprocesses with ``HF_HOME``
in the test's folder and ``HF_ENDPOINT`` at FakeHub (served from a thread of this process,
which counts the refresh requests). The processes print a hash of the token they ended with,
never the token.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hub_auth import HubAuth
from hub_auth._login.store import TokenStore
from hub_auth.testing import FakeHub, FakeUser

pytest.importorskip("huggingface_hub")

HOUR = 3600
NAME = "oauth-ada"

# Each tool in a process of its own: import, say "ready", wait for "go", resolve the token.
_SCRIPT = """
import hashlib, json, sys, time
from pathlib import Path
ready, go, tool = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if tool == "huggingface_hub":
    from huggingface_hub import get_token
else:
    from hub_auth import sync as hf_auth
    hf_auth.default_client()
    def get_token():
        return hf_auth.get_token().unwrap().get_secret_value()
ready.touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
start = time.time()
token = get_token()
end = time.time()
print(json.dumps({"sha": hashlib.sha256(token.encode()).hexdigest(), "start": start, "end": end}))
"""


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def env(fake_hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", raising=False)
    environ = dict(os.environ)
    for name in ("HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN", "HF_DEVICE_CODE_OAUTH_CLIENT_ID"):
        environ.pop(name, None)
    environ.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=fake_hub.url,
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="",
    )
    return environ


def store_due_login(hub: FakeHub, store: TokenStore) -> dict[str, Any]:
    """A browser login, stored as huggingface_hub stores it, with an hour left."""
    answer = hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=HOUR)
    extra = {
        "refresh_token": answer["refresh_token"],
        "expires_at": str(int(time.time()) + answer["expires_in"]),
        "hub_auth_endpoint": hub.url,
    }
    store.save(NAME, answer["access_token"], extra=extra).unwrap()
    return answer


def start(tool: str, env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[str], Path]:
    ready = folder / f"ready-{tool}"
    process = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(ready), str(folder / "go"), tool],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, ready


def run(tools: list[str], env: dict[str, str], folder: Path) -> list[dict[str, Any]]:
    """Start one process per tool, let them resolve the token at the same moment."""
    started = [start(tool, env, folder) for tool in tools]
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready in started):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(process.poll() is None for process, _ in started)
        time.sleep(0.01)
    (folder / "go").touch()
    outcomes = []
    for process, _ in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out))
    return outcomes


def hf_view(env: dict[str, str]) -> dict[str, str]:
    """Hashes of what huggingface_hub's own readers see (get_token() and the entry)."""
    code = (
        "import hashlib, json\n"
        "from huggingface_hub import get_token\n"
        "from huggingface_hub.utils._auth import _read_stored_tokens_full\n"
        "h = lambda s: hashlib.sha256(s.encode()).hexdigest()\n"
        f"entry = _read_stored_tokens_full()[{NAME!r}]\n"
        "print(json.dumps({'token': h(get_token()), 'hf_token': h(entry['hf_token']),\n"
        "  'refresh_token': h(entry['refresh_token']), 'expires_at': entry['expires_at']}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    view: dict[str, str] = json.loads(done.stdout)
    return view


async def test_what_hub_auth_refreshed_is_what_huggingface_hub_returns(
    fake_hub: FakeHub, store: TokenStore, env: dict[str, str]
) -> None:
    login = store_due_login(fake_hub, store)
    async with HubAuth(endpoint=fake_hub.url) as auth:
        token = (await auth.get_token()).unwrap().get_secret_value()
    assert token != login["access_token"]
    entry = store.read_entries().unwrap()[NAME]
    view = hf_view(env)
    assert view == {
        "token": sha(token),
        "hf_token": sha(token),
        "refresh_token": sha(entry["refresh_token"]),
        "expires_at": entry["expires_at"],
    }
    assert fake_hub.oauth.refresh_requests == 1  # huggingface_hub found it fresh


async def test_what_huggingface_hub_refreshed_is_what_hub_auth_uses(
    fake_hub: FakeHub, store: TokenStore, env: dict[str, str], tmp_path: Path
) -> None:
    login = store_due_login(fake_hub, store)
    [outcome] = run(["huggingface_hub"], env, tmp_path)
    assert fake_hub.oauth.refresh_requests == 1
    entry = store.read_entries().unwrap()[NAME]
    assert outcome["sha"] == sha(entry["hf_token"]) == sha(store.read_active().unwrap() or "")
    assert entry["hf_token"] != login["access_token"]
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.get_token()).unwrap().get_secret_value() == entry["hf_token"]
        assert (await auth.whoami()).unwrap().username == "ada"
    assert fake_hub.oauth.refresh_requests == 1


def test_both_tools_refreshing_at_once_spend_the_refresh_token_once(
    fake_hub: FakeHub, store: TokenStore, env: dict[str, str], tmp_path: Path
) -> None:
    login = store_due_login(fake_hub, store)
    # The refresh is held at FakeHub, so the other process comes while it is in flight.
    fake_hub.oauth.refresh_delay = 1.0
    first, second = run(["hub_auth", "huggingface_hub"], env, tmp_path)
    assert fake_hub.oauth.refresh_requests == 1
    assert fake_hub.oauth.live_refresh_tokens == 1  # the rotated one; no invalid_grant
    entry = store.read_entries().unwrap()[NAME]
    assert entry["hf_token"] != login["access_token"]
    assert first["sha"] == second["sha"] == sha(entry["hf_token"])
    assert sha(store.read_active().unwrap() or "") == first["sha"]
    # They did overlap: each asked before the other had its answer.
    assert first["start"] < second["end"] and second["start"] < first["end"]
    assert max(first["end"], second["end"]) - min(first["start"], second["start"]) >= 1.0
