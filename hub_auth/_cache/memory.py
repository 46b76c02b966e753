"""Whoami caches: ``MemoryCache`` (TTL + LRU, in process) and the parts ``RedisCache`` reuses.

The Hub rate-limits ``/api/whoami-v2`` per IP, so a service that checks every request's token
must remember answers. A cache is keyed by an HMAC-SHA256 of the endpoint and the token (never
the token; one cache shared by a staging and a production client keeps their answers apart),
keeps successful answers for ``ttl`` seconds (never past the token's own expiry), keeps 401s
only when ``negative_ttl`` is set and then in a bound of their own (a flood of random tokens
cannot push valid users out), and never keeps a failure that says nothing about the token (403,
429, 5xx, network, timeout, bad response). Every caller gets its own copy of a cached error, so
``raise result.error`` in one task does not chain onto an object another task holds.

Single-flight: concurrent misses for one token in one event loop share a single ``load``; the
load runs as its own task, so a caller that is cancelled leaves the others (and the load) alone.
A cache may be shared by several event loops in several threads (an application's loop and a
sync facade's own loop thread): the dictionaries are guarded by a ``threading.Lock`` that is
never held across an ``await``, and a load is only ever joined from the loop that started it.

Stale-if-error (``stale_ttl``, off by default): after ``ttl`` a successful answer is kept
``stale_ttl`` seconds more (never past the token's own expiry). It is never served while the
Hub can be asked; it is served only when the Hub cannot answer (network, timeout, 5xx, 429, a
rate-limit backoff), which is logged at most once a minute and counted in ``stats().stale``.
A 401 or 403 for the token replaces it at once.

Rate-limit backoff: after a 429 that says when to come back, the cache asks the Hub about no
token at that endpoint until then; misses get the stale answer if there is one, else
``Err(rate_limited)`` with ``retry_after``, without a request (``HubClient`` does the same for
one client; the cache extends it to every client sharing the cache, ``RedisCache`` to every
replica).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Err, Ok, Result

__all__ = [
    "CacheStats",
    "MemoryCache",
    "RateLimitHooks",
    "SingleFlight",
    "StaleNotice",
    "cache_lifetime",
    "check_secret",
    "token_key",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Loader = Callable[[str], Awaitable[Result[UserInfo]]]
"""What a cache calls on a miss: ``HubClient.whoami`` (token in, result out)."""

logger = logging.getLogger("hub_auth")

MIN_SECRET_BYTES = 32
MIN_SECRET_PAIRS = 16
"""Different pairs of neighbouring bytes a secret needs (random ones of 32 bytes have 20+)."""

_MAKE_SECRET = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _scoped(endpoint: str, token: str) -> bytes:
    # The endpoint's length first, so no (endpoint, token) pair reads as another one.
    scope = endpoint.encode()
    return b"%d:%s%s" % (len(scope), scope, token.encode())


def token_key(secret: bytes, token: str, endpoint: str) -> str:
    """The cache key of ``token`` at ``endpoint``: hex HMAC-SHA256 under ``secret`` (the token
    cannot be read back from it, and without the secret it cannot be checked against a guess)."""
    return hmac.new(secret, _scoped(endpoint, token), hashlib.sha256).hexdigest()


def _hmac_pads(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the inner and outer HMAC pads of ``secret`` (RFC 2104)."""
    block = hashlib.sha256().block_size
    if len(secret) > block:
        secret = hashlib.sha256(secret).digest()
    padded = secret.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))
    return inner, outer


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


def own_copy(result: Result[UserInfo]) -> Result[UserInfo]:
    """``result``, with an error of its own for this caller when it is an ``Err``.

    A cached or shared ``Err`` must not hand one exception object to many tasks: raising it
    sets its ``__traceback__`` and chains ``__context__`` for every holder.
    """
    if isinstance(result, Err):
        return Err(copy.copy(result.error))
    return result


def cache_lifetime(result: Result[UserInfo], ttl: float, negative_ttl: float) -> float:
    """Seconds ``result`` may be kept: 0 means do not cache it.

    A success is kept ``ttl`` seconds, but never past the expiry the Hub reports for the
    token. A 401 is kept ``negative_ttl`` seconds. Anything else is about the Hub or the
    network, not the token, and is never kept.
    """
    if isinstance(result, Ok):
        token = result.value.token
        if token is not None and token.expires_at is not None:
            return max(0.0, min(ttl, token.expires_at.timestamp() - time.time()))
        return ttl
    if result.error.kind is ErrorKind.UNAUTHORIZED:
        return negative_ttl
    return 0.0


STALE_IF = frozenset(
    {ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.RATE_LIMITED}
)
"""Failures that say the Hub cannot be asked now (not that the token is bad): a stale
answer may stand in for them."""

REPLACES_STALE = frozenset({ErrorKind.UNAUTHORIZED, ErrorKind.FORBIDDEN})
"""Answers about the token itself: a stale answer is dropped when the Hub says one of these."""

MAX_BACKOFF = 300.0
"""The longest a 429 keeps a cache from asking the Hub (the Hub's rate-limit window)."""


def stale_lifetime(result: Result[UserInfo], ttl: float, stale_ttl: float) -> float:
    """Seconds from now ``result`` may be served stale-if-error: ``ttl + stale_ttl``, never
    past the token's own expiry; 0 for anything but a success, or when ``stale_ttl`` is 0."""
    if not stale_ttl or not isinstance(result, Ok):
        return 0.0
    total = ttl + stale_ttl
    token = result.value.token
    if token is not None and token.expires_at is not None:
        return max(0.0, min(total, token.expires_at.timestamp() - time.time()))
    return total


def backoff_wait(result: Result[UserInfo]) -> float | None:
    """Seconds the Hub asked us to leave it alone (a 429 with ``retry_after``), capped at
    ``MAX_BACKOFF``; ``None`` for any other outcome."""
    if isinstance(result, Err) and result.error.kind is ErrorKind.RATE_LIMITED:
        wait = result.error.retry_after
        if wait is not None and wait > 0:
            return min(wait, MAX_BACKOFF)
    return None


class RateLimitHooks:
    """The clients (``HubClient``) that already tell a cache the moment the Hub says to back
    off; hooked on a cache's first load through them (``load`` is ``HubClient.whoami``)."""

    __slots__ = ("_clients", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[object] = weakref.WeakSet()

    def hook(self, load: Loader, listener: Callable[[float], None]) -> bool:
        """Whether ``load``'s client calls ``listener(seconds)`` on a backoff (hooked now if
        it was not); False for a loader that is not a ``HubClient``'s."""
        client = getattr(load, "__self__", None)
        add = getattr(client, "add_rate_limit_listener", None)
        if client is None or not callable(add):
            return False
        with self._lock:
            try:
                if client in self._clients:
                    return True
                self._clients.add(client)
            except TypeError:  # not weakly referable: never hooked, never kept
                return False
        add(listener)
        return True


def rate_limited(remaining: float) -> Err[HubAuthError]:
    """The answer to a miss while the Hub's rate-limit wait lasts: no request is made."""
    return Err(
        HubAuthError(
            ErrorKind.RATE_LIMITED,
            "the Hub is rate limiting this service, which does not ask it again before the "
            "wait it gave is over (tokens already cached keep working)",
            retry_after=remaining,
        )
    )


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


def check_seconds(value: float, name: str, *, minimum: float = 0.0, allow_zero: bool) -> float:
    """``value`` as a float after checking it is a number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if (value == 0 and allow_zero) or (value > 0 and value >= minimum):
        return float(value)
    bound = f">= {minimum:g}" if minimum else "> 0"
    raise ValueError(f"{name} must be {bound}{' or 0' if allow_zero else ''}, got {value!r}")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a cache since it was created (for tests, metrics and benchmarks)."""

    hits: int
    """Answers served from the cache."""
    misses: int
    """Lookups that found nothing (concurrent misses of one token count once each)."""
    loads: int
    """Calls to ``load``, that is requests to the Hub: at most one per token at a time."""
    entries: int | None
    """Entries held now (expired ones leave lazily); ``None`` when unknown (Redis)."""
    errors: int = 0
    """Failed operations on the shared store (Redis), each answered by asking the Hub."""
    stale: int = 0
    """Answers served past their ``ttl`` because the Hub could not be asked (``stale_ttl``)."""
    waits: int = 0
    """Misses that waited for another replica's Hub request instead of making one (Redis)."""
    rate_limited: int = 0
    """Misses answered without a Hub request because of a rate-limit backoff (stale or
    ``Err(rate_limited)``)."""
    backoff_seconds: float = 0.0
    """Seconds of rate-limit backoff the Hub asked for, summed over the 429s this cache saw."""

    @property
    def hub_requests(self) -> int:
        """Requests to the Hub (``loads``)."""
        return self.loads

    def __call__(self) -> CacheStats:
        """``cache.stats()`` and ``cache.stats`` are the same snapshot (the property came first)."""
        return self


class SingleFlight(Generic[K, V]):
    """One running load per key and event loop, shared by every concurrent caller.

    ``await flight.run(key, start)`` starts ``start()`` as a task unless one is already
    running for ``key`` in this loop, then awaits it through ``asyncio.shield``: cancelling
    a caller cancels only that caller. Tasks are keyed by loop too, because a task can only
    be awaited from its own loop.
    """

    __slots__ = ("_lock", "_tasks")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[tuple[K, int], asyncio.Task[V]] = {}

    async def run(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The outcome of the load running for ``key`` in this loop, started if none is."""
        loop = asyncio.get_running_loop()
        slot = (key, id(loop))
        with self._lock:
            task = self._tasks.get(slot)
            # An id can be reused by a new loop once an old one is gone: check the loop itself.
            if task is None or task.get_loop() is not loop:
                task = loop.create_task(start(), name="hub_auth whoami load")
                self._tasks[slot] = task
                task.add_done_callback(functools.partial(self._finished, slot))
        return await asyncio.shield(task)

    def _finished(self, slot: tuple[K, int], task: asyncio.Task[V]) -> None:
        with self._lock:
            if self._tasks.get(slot) is task:
                del self._tasks[slot]
        # Every waiter may have been cancelled: mark the outcome seen so asyncio does not
        # log "exception was never retrieved" for a load that failed.
        if not task.cancelled():
            task.exception()

    def discard(self, key: K) -> None:
        """Let the next caller for ``key`` start a new load (current waiters keep theirs)."""
        with self._lock:
            for slot in [slot for slot in self._tasks if slot[0] == key]:
                del self._tasks[slot]

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)


class MemoryCache:
    """An in-process whoami cache: TTL, LRU bound, optional negative caching, single-flight.

    Give one to ``HubAuth`` and share that client across requests::

        auth = HubAuth(cache=MemoryCache(ttl=60.0, max_entries=10_000))

    Args:
        ttl: Seconds a successful answer is kept (never past the token's own expiry).
        max_entries: Successful answers at most; past it the least recently used go first.
        negative_ttl: Seconds a 401 (unknown, expired or revoked token) is kept, so a flood
            of bad tokens does not reach the Hub; 0 (the default) keeps none.
        max_negative_entries: 401s at most, kept apart from the successful answers so a
            flood of bad tokens never evicts a valid user; a tenth of ``max_entries`` (at
            least 1) by default.
        key: The HMAC key for the cache keys (at least 32 bytes, not a repeated pattern);
            random per process by default.
        stale_ttl: Seconds a successful answer may still be served after ``ttl`` while the
            Hub cannot be asked (network, timeout, 5xx, 429, a rate-limit backoff); never
            after a 401 or 403 for the token, never past the token's expiry. 0 (the default)
            serves nothing stale.
        clock: A monotonic clock in seconds (tests inject a fake one).
    """

    def __init__(
        self,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        *,
        negative_ttl: float = 0.0,
        max_negative_entries: int | None = None,
        key: bytes | str | None = None,
        stale_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = check_seconds(ttl, "ttl", allow_zero=False)
        self._stale_ttl = check_seconds(stale_ttl, "stale_ttl", allow_zero=True)
        self._negative_ttl = check_seconds(negative_ttl, "negative_ttl", allow_zero=True)
        self._max_entries = _check_count(max_entries, "max_entries")
        self._max_negative_entries = (
            max(1, max_entries // 10)
            if max_negative_entries is None
            else _check_count(max_negative_entries, "max_negative_entries")
        )
        secret = secrets.token_bytes(32) if key is None else check_secret(key, "key")
        self._inner, self._outer = _hmac_pads(secret)
        # (endpoint, inner state after the endpoint's scope): one endpoint per HubAuth.
        self._scoped_inner: tuple[str, hashlib._Hash] | None = None
        self._clock = clock
        self._lock = threading.Lock()
        # Successful answers and 401s in two LRU tables with their own bounds:
        # (fresh until, result, may be served stale-if-error until).
        self._entries: OrderedDict[bytes, tuple[float, Result[UserInfo], float]] = OrderedDict()
        self._negatives: OrderedDict[bytes, tuple[float, Result[UserInfo], float]] = OrderedDict()
        self._flight: SingleFlight[bytes, Result[UserInfo]] = SingleFlight()
        # Bumped by invalidate/clear: a load that started before must not store its answer.
        self._generation = 0
        self._hits = 0
        self._misses = 0
        self._loads = 0
        self._stale = 0
        self._rate_limited = 0
        self._backoff_seconds = 0.0
        # endpoint -> clock() before which the Hub is not asked (it answered 429).
        self._backoff_until: dict[str, float] = {}
        self._stale_notice = StaleNotice()
        self._hooks = RateLimitHooks()

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def stale_ttl(self) -> float:
        return self._stale_ttl

    @property
    def negative_ttl(self) -> float:
        return self._negative_ttl

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def max_negative_entries(self) -> int:
        return self._max_negative_entries

    def _key(self, token: str, endpoint: str) -> bytes:
        # HMAC-SHA256 (RFC 2104) from precomputed pad states: twice as fast as copying an
        # hmac.HMAC, and the hit path is measured in microseconds. The inner state is kept
        # after the endpoint's scope too (the same bytes as ``_scoped``, hashed in two parts).
        scoped = self._scoped_inner
        if scoped is None or scoped[0] != endpoint:
            state = self._inner.copy()
            state.update(_scoped(endpoint, ""))
            self._scoped_inner = scoped = (endpoint, state)
        inner = scoped[1].copy()
        inner.update(token.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    async def fetch(self, token: str, load: Loader, *, endpoint: str) -> Result[UserInfo]:
        """The cached outcome for ``token`` at ``endpoint``, or ``load(token)`` shared by
        concurrent callers."""
        key = self._key(token, endpoint)
        now = self._clock()
        with self._lock:
            table = self._entries
            entry = table.get(key)
            if entry is None:
                table = self._negatives
                entry = table.get(key)
            if entry is not None:
                if entry[0] > now:
                    table.move_to_end(key)
                    self._hits += 1
                    return own_copy(entry[1])
                if entry[2] <= now:  # kept past ttl only while it may be served stale
                    del table[key]
            self._misses += 1
        return own_copy(await self._flight.run(key, lambda: self._load(key, token, load, endpoint)))

    async def _load(self, key: bytes, token: str, load: Loader, endpoint: str) -> Result[UserInfo]:
        with self._lock:
            generation = self._generation
            remaining = self._backoff_until.get(endpoint, 0.0) - self._clock()
            if remaining > 0:
                self._rate_limited += 1
            else:
                self._loads += 1
        heard = False
        result: Result[UserInfo]
        if remaining > 0:
            result = rate_limited(remaining)
        else:
            heard = self._listen(load, endpoint)
            result = await load(token)
        if isinstance(result, Err):
            return self._after_error(key, result, endpoint, generation, heard=heard)
        lifetime = cache_lifetime(result, self._ttl, self._negative_ttl)
        if lifetime > 0:
            now = self._clock()
            expires = now + lifetime
            stale_until = max(expires, now + stale_lifetime(result, self._ttl, self._stale_ttl))
            self._store(key, generation, (expires, result, stale_until))
        return result

    def _start_backoff(self, endpoint: str, wait: float, *, counted: bool) -> None:
        with self._lock:
            until = self._clock() + wait
            if until > self._backoff_until.get(endpoint, 0.0):
                if counted:
                    self._backoff_seconds += wait
                self._backoff_until[endpoint] = until

    def _store(
        self, key: bytes, generation: int, entry: tuple[float, Result[UserInfo], float]
    ) -> None:
        if isinstance(entry[1], Ok):
            table, other, bound = self._entries, self._negatives, self._max_entries
        else:
            table, other, bound = self._negatives, self._entries, self._max_negative_entries
        with self._lock:
            if generation == self._generation:
                other.pop(key, None)
                table[key] = entry
                table.move_to_end(key)
                while len(table) > bound:
                    table.popitem(last=False)

    def _listen(self, load: Loader, endpoint: str) -> bool:
        """Whether ``load``'s client tells this cache about backoffs (hooked on first use)."""
        return self._hooks.hook(
            load, functools.partial(self._start_backoff, endpoint, counted=True)
        )

    def _after_error(
        self,
        key: bytes,
        result: Err[HubAuthError],
        endpoint: str,
        generation: int,
        *,
        heard: bool,
    ) -> Result[UserInfo]:
        """What a miss answers when the Hub (or the backoff) said no: the error, a 401 kept,
        or the stale answer standing in for a failure of the Hub."""
        error = result.error
        if (wait := backoff_wait(result)) is not None:
            # Counted when the Hub said it (not a backoff's remainder) and no listener did.
            self._start_backoff(endpoint, wait, counted=error.status == 429 and not heard)
        if error.kind in REPLACES_STALE:
            with self._lock:
                if generation == self._generation:
                    self._entries.pop(key, None)
            lifetime = cache_lifetime(result, self._ttl, self._negative_ttl)
            if lifetime > 0:
                expires = self._clock() + lifetime
                self._store(key, generation, (expires, result, expires))
            return result
        if error.kind in STALE_IF and self._stale_ttl:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None or entry[2] <= self._clock():
                    return result
                self._stale += 1
            self._stale_notice.served(error, self._stale_ttl)
            return entry[1]
        return result

    async def invalidate(self, token: str, *, endpoint: str) -> None:
        """Forget ``token`` at ``endpoint``; a load already running for it will not be stored."""
        key = self._key(token, endpoint)
        with self._lock:
            self._entries.pop(key, None)
            self._negatives.pop(key, None)
            self._generation += 1
        self._flight.discard(key)

    def clear(self) -> None:
        """Forget every entry (loads already running will not be stored)."""
        with self._lock:
            self._entries.clear()
            self._negatives.clear()
            self._backoff_until.clear()
            self._generation += 1

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, loads (Hub requests), stale answers, backoff and entries (successes
        and 401s) so far; ``cache.stats()`` works too."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                entries=len(self),
                stale=self._stale,
                rate_limited=self._rate_limited,
                backoff_seconds=self._backoff_seconds,
            )

    def __len__(self) -> int:
        # Not under the lock: two len() reads are atomic enough for a count.
        return len(self._entries) + len(self._negatives)

    def __repr__(self) -> str:
        return (
            f"<MemoryCache ttl={self._ttl:g} negative_ttl={self._negative_ttl:g} "
            f"entries={len(self._entries)}/{self._max_entries} "
            f"negative={len(self._negatives)}/{self._max_negative_entries}>"
        )


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
