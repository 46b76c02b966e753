"""FakeHub from the shell, as a newcomer meets it: help with examples, hints, one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from hub_auth import HubAuth
from hub_auth._tokens import check_format
from hub_auth.testing import FakeHub, FakeUser
from hub_auth.testing._cli import _load_tokens


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


def test_a_port_in_use_is_one_line_with_the_fix_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = _fakehub("--port", str(port), "--seed-users", "1")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: port {port} is in use; try --port 0"]


def test_a_tokens_file_that_is_not_json_is_named_with_the_problem(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"hf_ada_token_0123456789abcdefghijkl": {"name": "ada",}}\n')

    done = _fakehub("--tokens-file", str(users))

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {users}: not valid JSON: Expecting property name enclosed in double quotes"
        " (line 1, column 56)"
    ]


def test_a_missing_tokens_file_is_named(tmp_path: Path) -> None:
    done = _fakehub("--tokens-file", str(tmp_path / "nope.json"))

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: cannot read the tokens file {tmp_path / 'nope.json'}: No such file or directory"
    ]


def test_a_token_hub_auth_would_refuse_is_refused_with_the_rule(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    good = "hf_ada_token_0123456789abcdefghijkl"
    for bad in ("bad", "hf_short0123456", "hf_has space_0123456789", "api_org_0123456789abcdefgh"):
        users.write_text(json.dumps({good: "ada", bad: "grace"}))

        done = _fakehub("--tokens-file", str(users))

        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"error: {users}: the token of entry 2 ('grace') is refused: a Hub token is 'hf_'"
            " followed by at least 16 letters, digits, '_', '-' or '.', as hub_auth checks"
            " before sending one"
        ]
        assert bad not in done.stderr.replace(str(users), "")  # the token is never echoed


def test_fakehub_refuses_exactly_the_tokens_hub_auth_refuses(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    samples = [
        "hf_" + "a" * 16,
        "hf_" + "a" * 15,
        "hf_jwt_a.b-c_0123456789",
        "hf_ada_token_0123456789abcdefghijkl",
        "hf_ada token_0123456789",
        "hf_ada\u00e9token_0123456789",
        "HF_0123456789abcdefgh",
        "api_org_0123456789abcdefgh",
        "bad",
    ]
    for token in samples:
        users.write_text(json.dumps({token: "ada"}))
        try:
            _load_tokens(users)
        except ValueError:
            refused = True
        else:
            refused = False
        assert refused == (check_format(token) is not None), token


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
