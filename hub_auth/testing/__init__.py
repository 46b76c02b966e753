"""FakeHub: an in-process emulator of the Hub's auth endpoint, with fault injection.

FakeHub is a real ``aiohttp.web`` server, by default on ``127.0.0.1`` and a free port, that
answers ``GET /api/whoami-v2`` the way the Hub does: a camelCase JSON body for a known token,
401 ``Invalid credentials in Authorization header`` for an unknown or revoked one, 403 for a
token an organisation refuses, ``X-Request-Id`` on every response and the IETF ``RateLimit``
headers. Faults are queued and served first in, first out: errors, 429s, delays, dropped
connections, malformed bodies and redirects; a random failure rate serves load tests.

Use it with ``async with`` in the event loop of a test, or in a background thread with
``with`` (from sync code, or when the test's loop must not host the server)::

    async with FakeHub() as hub:
        token = hub.add_token(name="ada-lovelace", orgs=["analytical-engines"])
        hub.rate_limit_next()  # the first request gets a 429, the next one succeeds
        ...  # point the client at hub.url

The ``fake_hub`` pytest fixture (``hub_auth.pytest_plugin``) yields one started in a thread.
``python -m hub_auth.testing --seed-users 100 --tokens-out tokens.json`` runs one in the
foreground for benchmarks and examples; ``--help`` lists the options.

Only the fault queue, the counters and the token table are shared with the thread that
configures the hub; one lock guards them, so configuring while requests arrive is safe.

The modules, lowest first (each imports only those before it): ``_users`` (FakeUser,
make_token), ``_pages`` (the answers every endpoint shares), ``_openid`` ("Sign in with HF"),
``_oauth`` (device login, refresh, token exchange), ``_hub`` (FakeHub, faults), ``_cli``
(``python -m hub_auth.testing``). This module only re-exports their public names.
"""

from hub_auth.testing._cli import main
from hub_auth.testing._hub import (
    FORBIDDEN_MESSAGE,
    INVALID_CREDENTIALS_MESSAGE,
    RATE_LIMITED_MESSAGE,
    WHOAMI_PATH,
    FakeHub,
    RecordedRequest,
)

# FakeOAuth (hub.oauth) was importable from here before the split; it stays so, outside __all__.
from hub_auth.testing._oauth import FakeOAuth as FakeOAuth
from hub_auth.testing._users import FakeUser, make_token

__all__ = [
    "FORBIDDEN_MESSAGE",
    "INVALID_CREDENTIALS_MESSAGE",
    "RATE_LIMITED_MESSAGE",
    "WHOAMI_PATH",
    "FakeHub",
    "FakeUser",
    "RecordedRequest",
    "make_token",
]

# Reprs, tracebacks and help() show the public path, not the private module.
for _public in (FakeHub, FakeUser, RecordedRequest, make_token, main):
    _public.__module__ = __name__
del _public
