"""FakeHub from the shell, as a newcomer meets it: help with examples, hints, one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from hub_auth import HubAuth
from hub_auth.testing import FakeHub, FakeUser


def _fakehub(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_auth.testing", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_shows_copy_paste_examples() -> None:
    done = _fakehub("--help")

    assert done.returncode == 0
    assert "--seed-users 2 --print-tokens" in done.stdout
    assert "HF_ENDPOINT=http://127.0.0.1:8077" in done.stdout
    assert "--tokens-file users.json" in done.stdout


def test_a_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = _fakehub("--port", str(port), "--seed-users", "1")

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_no_tokens_gets_a_hint_before_serving() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "hub_auth.testing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        assert server.stdout.readline().startswith("FakeHub listening on http://127.0.0.1:")
        hint = server.stderr.readline()
    finally:
        server.terminate()
        server.communicate(timeout=10)

    assert hint.startswith("note: FakeHub serves no tokens")
    assert "--seed-users N --print-tokens" in hint


async def test_each_user_has_a_token_name_of_its_own(hf_home: Path) -> None:
    async with FakeHub() as hub:
        ada = hub.add_token(name="ada")
        grace = hub.add_token(user=FakeUser(name="grace"))
        async with HubAuth(endpoint=hub.url, hf_home=hf_home) as auth:
            assert (await auth.login(ada)).unwrap().token_name == "ada-token"
            assert (await auth.login(grace)).unwrap().token_name == "grace-token"
            names = [token.name for token in (await auth.list_tokens()).unwrap()]

    assert sorted(names) == ["ada-token", "grace-token"]  # two logins, two entries
    assert FakeUser(name="x", token_name=None).body()["auth"] == {"type": "access_token"}
