"""pytest plugin of hub_auth: the ``fake_hub`` fixture.

Registered as a ``pytest11`` entry point, so installing hub_auth makes the fixture available
to every test suite; ``-p hub_auth.pytest_plugin`` loads it explicitly.

pytest imports this module in every run of every environment where hub_auth is installed, so
it imports nothing heavy: :class:`~hub_auth.testing.FakeHub` (and ``aiohttp.web`` with it) is
imported by the fixture, the first time a test uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hub_auth.testing import FakeHub

__all__ = ["fake_hub"]


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A :class:`~hub_auth.testing.FakeHub` serving from a background thread for one test.

    The server has its own event loop, so the fixture works in sync tests and in async tests
    alike, without an async fixture plugin::

        async def test_whoami(fake_hub):
            token = fake_hub.add_token(name="ada-lovelace")
            ...  # point the client at fake_hub.url
    """
    from hub_auth.testing import FakeHub

    with FakeHub() as hub:
        yield hub
