"""The real ``hub-auth`` process shows nothing a hostile file, variable or Hub could use against
the terminal or the login (issue 21, items 9 and 12).

Every test runs the installed entry point in a process of its own (the module is in
``SLOW_MODULES``): what reaches the terminal is what the process writes, byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_auth.testing import make_token

# Terminal escape sequences a token file or HF_TOKEN could carry.
OSC52_CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H"
WINDOW_TITLE = "\x1b]0;all good\x07"
C1_CSI = "\x9b2J"


def hub_auth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real entry point; bytes, so nothing is decoded away."""
    script = Path(sys.executable).parent / "hub-auth"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hub_auth.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_refused_safely(done: subprocess.CompletedProcess[bytes], secret: str) -> str:
    assert done.returncode == 1, done
    assert done.stdout == b""
    assert b"Traceback" not in done.stderr
    for byte in (b"\x1b", b"\x07", b"\x9b", "\x9b".encode()):
        assert byte not in done.stderr
    message = done.stderr.decode()
    assert secret not in message
    assert "not a Hub token" in message
    assert "it was not printed" in message
    return message


# -- item 9: `hub-auth token` prints only what looks like a token ---------------------------


@pytest.mark.parametrize(
    "sequence", [OSC52_CLIPBOARD, CLEAR_SCREEN, WINDOW_TITLE, C1_CSI], ids=repr
)
def test_token_refuses_hf_token_with_escape_sequences(sequence: str) -> None:
    token = make_token("escapes")
    done = hub_auth("token", env={"HF_TOKEN": token + sequence})
    message = assert_refused_safely(done, token)
    assert "HF_TOKEN" in message
    assert "control" in message  # check_format's reason


@pytest.mark.parametrize("sequence", [OSC52_CLIPBOARD, CLEAR_SCREEN, WINDOW_TITLE], ids=repr)
def test_token_refuses_a_token_file_with_escape_sequences(hf_home: Path, sequence: str) -> None:
    token = make_token("file-escapes")
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(sequence + token, encoding="utf-8")
    message = assert_refused_safely(hub_auth("token"), token)
    assert f"the token file {hf_home / 'token'}" in message


def test_the_message_escapes_a_hostile_token_path(tmp_path: Path) -> None:
    folder = tmp_path / f"login{WINDOW_TITLE}"
    folder.mkdir()
    (folder / "token").write_text("not a token at all", encoding="utf-8")
    done = hub_auth("token", env={"HF_TOKEN_PATH": str(folder / "token")})
    message = assert_refused_safely(done, "not a token at all")
    assert "login\\x1b]0;all good\\x07" in message  # shown, escaped


def test_token_still_prints_a_real_token(hf_home: Path) -> None:
    token = make_token("printable")
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(token, encoding="utf-8")
    done = hub_auth("token")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{token}\n".encode(), b"")
    done = hub_auth("token", env={"HF_TOKEN": f"  {token}\n"})  # stripped, as huggingface_hub
    assert (done.returncode, done.stdout) == (0, f"{token}\n".encode())
