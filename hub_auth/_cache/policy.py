"""The rules every whoami cache follows: keys, secrets, lifetimes and stale-if-error.

The Hub rate-limits ``/api/whoami-v2`` per IP, so a service that checks every request's token
must remember answers. A cache is keyed by a MAC of the endpoint and the token (never the
token: HMAC-SHA256 in Redis, keyed BLAKE2b in memory; one cache shared by a staging and a
production client keeps their answers apart), keeps successful answers for ``ttl`` seconds
(never past the token's own expiry), keeps 401s only when ``negative_ttl`` is set, and never
keeps a failure that says nothing about the token (403, 429, 5xx, network, timeout, bad
response). Every caller gets its own copy of a cached error, so ``raise result.error`` in one
task does not chain onto an object another task holds.

Stale-if-error (``stale_ttl``, off by default): after ``ttl`` a successful answer is kept
``stale_ttl`` seconds more (never past the token's own expiry). It is never served while the
Hub can be asked; it is served only when the Hub cannot answer (network, timeout, 5xx, 429, a
rate-limit backoff), which is logged at most once a minute and counted in ``stats().stale``.
A 401 or 403 for the token replaces it at once.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from hub_auth._cache import Tally
from hub_auth._cache.flight import Backoff
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Err, Ok, Result

__all__ = [
    "REPLACES_STALE",
    "STALE_IF",
    "CacheBase",
    "Loader",
    "StaleNotice",
    "TokenKeys",
    "cache_lifetime",
    "check_count",
    "check_seconds",
    "check_secret",
    "own_copy",
    "scoped",
    "stale_lifetime",
    "token_key",
]

Loader = Callable[[str], Awaitable[Result[UserInfo]]]
"""What a cache calls on a miss: ``HubClient.whoami`` (token in, result out)."""

logger = logging.getLogger("hub_auth")

MIN_SECRET_BYTES = 32
MIN_SECRET_PAIRS = 16
"""Different pairs of neighbouring bytes a secret needs (random ones of 32 bytes have 20+)."""

# Endpoints whose key function TokenKeys (and hit lookup MemoryCache) keeps: one per client
# sharing the cache, in practice.
MAX_ENDPOINTS = 64

_MAKE_SECRET = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"

STALE_IF = frozenset(
    {ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.RATE_LIMITED}
)
"""Failures that say the Hub cannot be asked now (not that the token is bad): a stale
answer may stand in for them."""

REPLACES_STALE = frozenset({ErrorKind.UNAUTHORIZED, ErrorKind.FORBIDDEN})
"""Answers about the token itself: a stale answer is dropped when the Hub says one of these."""


def _scope_prefix(endpoint: str) -> bytes:
    # The endpoint's length first, so no (endpoint, token) pair reads as another one.
    scope = endpoint.encode()
    return b"%d:%s" % (len(scope), scope)


def scoped(endpoint: str, token: str) -> bytes:
    """What a cache key is a MAC of: ``token`` at ``endpoint``."""
    return _scope_prefix(endpoint) + token.encode()


def token_key(secret: bytes, token: str, endpoint: str) -> str:
    """The shared (Redis) cache key of ``token`` at ``endpoint``: hex HMAC-SHA256 under
    ``secret`` (the token cannot be read back from it, and without the secret it cannot be
    checked against a guess)."""
    return hmac.digest(secret, scoped(endpoint, token), hashlib.sha256).hex()


class TokenKeys:
    """In-process cache keys: keyed BLAKE2b (RFC 7693, a MAC by design) under ``secret``.

    Not HMAC-SHA256 as in Redis, where replicas must agree on the keys: in one process only
    speed matters, and a copied BLAKE2b state costs a third of an HMAC (the hit path is
    measured in microseconds).
    """

    __slots__ = ("_by_endpoint", "_state")

    def __init__(self, secret: bytes) -> None:
        self._state = hashlib.blake2b(key=secret, digest_size=32)
        self._by_endpoint: dict[str, Callable[[str], bytes]] = {}

    def __call__(self, token: str, endpoint: str) -> bytes:
        return self.for_endpoint(endpoint)(token)

    def for_endpoint(self, endpoint: str) -> Callable[[str], bytes]:
        """The key function of one endpoint, its part of the MAC hashed once: a hit hashes
        only the token."""
        keyer = self._by_endpoint.get(endpoint)
        if keyer is None:
            prefixed = self._state.copy()
            prefixed.update(_scope_prefix(endpoint))

            def keyer(token: str) -> bytes:
                state = prefixed.copy()
                state.update(token.encode())
                return state.digest()

            if len(self._by_endpoint) < MAX_ENDPOINTS:  # a client has one; callers few
                self._by_endpoint[endpoint] = keyer
        return keyer


def check_secret(secret: bytes | str, what: str) -> bytes:
    """``secret`` as bytes; refuse a type, a length or a pattern that would make it guessable.

    The rule: at least 32 bytes, with at least 16 different pairs of neighbouring bytes. That
    refuses one byte repeated, a word or a short pattern repeated ("password" * 4 has 8 pairs),
    and never a random secret (``secrets.token_urlsafe(32)`` has about 40, ``token_hex(16)``
    more than 20).
    """
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"{what} must be bytes or str, not {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{what} is too short ({len(secret)} bytes, at least {MIN_SECRET_BYTES} are "
            f"needed); {_MAKE_SECRET}"
        )
    pairs = len({secret[index : index + 2] for index in range(len(secret) - 1)})
    if pairs < MIN_SECRET_PAIRS:
        raise ValueError(
            f"{what} is too weak: a repeated byte, word or short pattern ({pairs} different "
            f"pairs of neighbouring bytes, at least {MIN_SECRET_PAIRS} are needed); "
            f"{_MAKE_SECRET}"
        )
    return secret


def check_seconds(value: float, name: str, *, minimum: float = 0.0, allow_zero: bool) -> float:
    """``value`` as a float after checking it is a number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if (value == 0 and allow_zero) or (value > 0 and value >= minimum):
        return float(value)
    bound = f">= {minimum:g}" if minimum else "> 0"
    raise ValueError(f"{name} must be {bound}{' or 0' if allow_zero else ''}, got {value!r}")


def check_count(value: int, name: str) -> int:
    """``value`` after checking it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class CacheBase:
    """What every cache has: its lifetimes checked once (``minimum``: the smallest value other
    than 0 it can keep), a clock, its counters, its rate-limit backoff and the stale notice."""

    def __init__(
        self,
        ttl: float,
        negative_ttl: float,
        stale_ttl: float,
        *,
        clock: Callable[[], float],
        minimum: float = 0.0,
    ) -> None:
        self._ttl = check_seconds(ttl, "ttl", minimum=minimum, allow_zero=False)
        self._negative_ttl = check_seconds(
            negative_ttl, "negative_ttl", minimum=minimum, allow_zero=True
        )
        self._stale_ttl = check_seconds(stale_ttl, "stale_ttl", minimum=minimum, allow_zero=True)
        self._clock = clock
        self._tally = Tally()
        self._rate_limit = Backoff(clock, self._tally)
        self._stale_notice = StaleNotice()

    @property
    def ttl(self) -> float:
        """Seconds a successful answer is fresh."""
        return self._ttl

    @property
    def negative_ttl(self) -> float:
        """Seconds a 401 is kept (0: none)."""
        return self._negative_ttl

    @property
    def stale_ttl(self) -> float:
        """Seconds past ``ttl`` a success may stand in while the Hub cannot answer (0: none)."""
        return self._stale_ttl

    def _serving_stale(self, error: HubAuthError) -> None:
        """Count and log a stale answer standing in for ``error``."""
        self._tally.add("stale")
        self._stale_notice.served(error, self._stale_ttl)


def own_copy(result: Result[UserInfo]) -> Result[UserInfo]:
    """``result``, with an error of its own for this caller when it is an ``Err``.

    A cached or shared ``Err`` must not hand one exception object to many tasks: raising it
    sets its ``__traceback__`` and chains ``__context__`` for every holder.
    """
    if isinstance(result, Err):
        return Err(copy.copy(result.error))
    return result


def _until_token_expires(result: Ok[UserInfo], seconds: float, now: float) -> float:
    """``seconds``, but never past the expiry the Hub reports for the token (``now`` is unix
    seconds)."""
    token = result.value.token
    if token is not None and token.expires_at is not None:
        return max(0.0, min(seconds, token.expires_at.timestamp() - now))
    return seconds


def cache_lifetime(
    result: Result[UserInfo], ttl: float, negative_ttl: float, *, now: float
) -> float:
    """Seconds ``result`` may be kept: 0 means do not cache it (``now``: unix seconds).

    A success is kept ``ttl`` seconds, but never past the expiry the Hub reports for the
    token. A 401 is kept ``negative_ttl`` seconds. Anything else is about the Hub or the
    network, not the token, and is never kept.
    """
    if isinstance(result, Ok):
        return _until_token_expires(result, ttl, now)
    if result.error.kind is ErrorKind.UNAUTHORIZED:
        return negative_ttl
    return 0.0


def stale_lifetime(result: Result[UserInfo], ttl: float, stale_ttl: float, *, now: float) -> float:
    """Seconds from ``now`` (unix seconds) ``result`` may be served stale-if-error: ``ttl +
    stale_ttl``, never past the token's own expiry; 0 for anything but a success, or when
    ``stale_ttl`` is 0."""
    if not stale_ttl or not isinstance(result, Ok):
        return 0.0
    return _until_token_expires(result, ttl + stale_ttl, now)


class StaleNotice:
    """Logs that stale answers are being served: a warning at most once per ``every`` seconds,
    with how many were served since the last one."""

    __slots__ = ("_count", "_every", "_last", "_lock")

    def __init__(self, every: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._every = every
        self._last: float | None = None
        self._count = 0

    def served(self, error: HubAuthError, stale_ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if self._last is not None and now - self._last < self._every:
                return
            self._last, count, self._count = now, self._count, 0
        logger.warning(
            "serving cached whoami answers past their ttl (stale-if-error, up to %gs more; "
            "%d since the last notice) because the Hub cannot be asked: %s",
            stale_ttl,
            count,
            error,
        )
