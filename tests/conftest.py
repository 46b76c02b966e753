"""Shared fixtures: every test runs with a private HF_HOME, HOME and no HF_* variables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# secret_guard fails any test whose logs or output carry a token (tests/secret_guard.py).
pytest_plugins = ["pytester", "tests.secret_guard"]

_ENV_TO_CLEAR = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HF_HOME and HOME at temporary folders so no test touches real login files."""
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    hf_home = tmp_path / "hf_home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    yield hf_home


@pytest.fixture
def hf_home(isolated_env: Path) -> Path:
    """The temporary HF_HOME of this test."""
    return isolated_env
