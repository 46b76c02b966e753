"""``Result`` narrows under ``mypy --strict``: ``is_ok``/``is_err``, ``match``, ``isinstance``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hub_auth
from hub_auth import Err, ErrorKind, HubAuthError, Ok, is_err, is_ok

TYPING = Path(__file__).parent / "typing_checks"
ROOT = Path(__file__).parent.parent


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode,
    reason="mypy is not installed (pip install -e '.[dev]')",
)
def test_mypy_narrows_results_and_rejects_unnarrowed_access() -> None:
    narrowed = _mypy(TYPING / "result_narrowing.py")
    assert narrowed.returncode == 0, narrowed.stdout + narrowed.stderr
    unnarrowed = _mypy(TYPING / "result_unnarrowed.py")
    assert unnarrowed.returncode == 1, unnarrowed.stdout + unnarrowed.stderr
    assert 'Item "Err[HubAuthError]" of ' in unnarrowed.stdout
    assert 'has no attribute "value"' in unnarrowed.stdout
    assert "result_unnarrowed.py:13:" in unnarrowed.stdout


def test_is_ok_and_is_err_at_run_time() -> None:
    error = HubAuthError(ErrorKind.NETWORK, "down")
    assert is_ok(Ok(1)) and not is_err(Ok(1))
    assert is_err(Err(error)) and not is_ok(Err(error))
    assert hub_auth.is_ok is is_ok and hub_auth.is_err is is_err
