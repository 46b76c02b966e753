"""examples/async_service.py runs against FakeHub and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_async_service_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "async_service.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "caller is ada-lovelace (analytical-engines)"
    assert lines[1].startswith("refused: the Hub rejected the token")
    assert lines[2].startswith("refused: invalid token")
    assert lines[3].startswith("could not check (server_error)")
    assert "100 concurrent checks: 100 ok" in done.stdout
    assert "logged in as ada-lovelace" in done.stdout
    assert done.stderr == ""
