"""pytest plugin of hub_auth: the ``fake_hub`` fixture.

Registered as a ``pytest11`` entry point, so installing hub_auth makes the fixture available
to every test suite; ``-p hub_auth.pytest_plugin`` loads it explicitly.

pytest imports this module in every run of every environment where hub_auth is installed, so
it imports nothing heavy: :class:`~hub_auth.testing.FakeHub` (and ``aiohttp.web`` with it) is
imported by the fixture, the first time a test uses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hub_auth.testing import FakeHub

__all__ = ["fake_hub"]

# A login from elsewhere (and offline mode): unset for the test, so the code under test
# reaches the fake Hub and never sends the developer's or the CI's real login.
_NOT_FOR_THE_FAKE_HUB = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_OIDC_RESOURCE",
    "HF_HUB_OFFLINE",
)


def _inside(value: str | None, folder: Path) -> bool:
    """``value`` names a path inside ``folder`` (this run's temporary folder)."""
    return bool(value) and Path(str(value)).resolve().is_relative_to(folder.resolve())


@pytest.fixture
def fake_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """A :class:`~hub_auth.testing.FakeHub` serving from a background thread for one test,
    and the environment pointed at it.

    The server has its own event loop, so the fixture works in sync tests and in async tests
    alike, without an async fixture plugin. For the test, ``HF_ENDPOINT`` is the fake Hub's
    URL and ``HF_HOME`` an empty temporary folder (unless it already is one of this run's), and
    ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, ``HF_TOKEN_PATH``, ``HF_OIDC_RESOURCE`` and
    ``HF_HUB_OFFLINE`` are unset: code that reads the environment (``hub_auth.sync``'s
    functions, ``HubAuth()``, ``huggingface_hub``) talks to the fake Hub and never sees your
    real login. All are restored after the test::

        def test_whoami(fake_hub, monkeypatch):
            monkeypatch.setenv("HF_TOKEN", fake_hub.add_token(name="ada-lovelace"))
            assert hub_auth.sync.whoami().unwrap().username == "ada-lovelace"
    """
    from hub_auth.testing import FakeHub

    temporary = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch, FakeHub() as hub:
        patch.setenv("HF_ENDPOINT", hub.url)
        # An HF_HOME in this run's temporary folder was isolated on purpose (by a fixture of
        # the suite): keep it, so the suite's own view of the login files stays true.
        if not _inside(os.environ.get("HF_HOME"), temporary):
            patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("fake_hub_hf_home")))
        if not _inside(os.environ.get("HF_TOKEN_PATH"), temporary):
            patch.delenv("HF_TOKEN_PATH", raising=False)
        for name in _NOT_FOR_THE_FAKE_HUB:
            patch.delenv(name, raising=False)
        yield hub
