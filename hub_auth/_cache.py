"""Whoami caches: ``MemoryCache`` (TTL + LRU, in process) and the parts ``RedisCache`` reuses.

The Hub rate-limits ``/api/whoami-v2`` per IP, so a service that checks every request's token
must remember answers. A cache is keyed by an HMAC-SHA256 of the token (never the token), keeps
successful answers for ``ttl`` seconds (never past the token's own expiry), keeps 401s only when
``negative_ttl`` is set, and never keeps a failure that says nothing about the token (403, 429,
5xx, network, timeout, bad response).

Single-flight: concurrent misses for one token in one event loop share a single ``load``; the
load runs as its own task, so a caller that is cancelled leaves the others (and the load) alone.
A cache may be shared by several event loops in several threads (the sync facade runs each call
in a new loop): the dictionaries are guarded by a ``threading.Lock`` that is never held across
an ``await``, and a load is only ever joined from the loop that started it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hub_auth._errors import ErrorKind
from hub_auth._models import UserInfo
from hub_auth._result import Ok, Result

__all__ = ["CacheStats", "MemoryCache", "SingleFlight", "cache_lifetime", "token_key"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Loader = Callable[[str], Awaitable[Result[UserInfo]]]
"""What a cache calls on a miss: ``HubClient.whoami`` (token in, result out)."""

MIN_KEY_BYTES = 16


def token_key(secret: bytes, token: str) -> str:
    """The cache key of ``token``: hex HMAC-SHA256 under ``secret`` (the token cannot be read
    back from it, and without the secret it cannot be checked against a guess)."""
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


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
    """``secret`` as bytes; refuse a type or a length that would make the keys guessable."""
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"{what} must be bytes or str, not {type(secret).__name__}")
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"{what} must be at least {MIN_KEY_BYTES} bytes, got {len(secret)}")
    return secret


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
        max_entries: Entries at most; past it the least recently used go first.
        negative_ttl: Seconds a 401 (unknown, expired or revoked token) is kept, so a flood
            of bad tokens does not reach the Hub; 0 (the default) keeps none.
        key: The HMAC key for the cache keys (at least 16 bytes); random per process by
            default.
        clock: A monotonic clock in seconds (tests inject a fake one).
    """

    def __init__(
        self,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        *,
        negative_ttl: float = 0.0,
        key: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = check_seconds(ttl, "ttl", allow_zero=False)
        self._negative_ttl = check_seconds(negative_ttl, "negative_ttl", allow_zero=True)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        self._max_entries = max_entries
        secret = secrets.token_bytes(32) if key is None else check_secret(key, "key")
        self._inner, self._outer = _hmac_pads(secret)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, Result[UserInfo]]] = OrderedDict()
        self._flight: SingleFlight[bytes, Result[UserInfo]] = SingleFlight()
        # Bumped by invalidate/clear: a load that started before must not store its answer.
        self._generation = 0
        self._hits = 0
        self._misses = 0
        self._loads = 0

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def negative_ttl(self) -> float:
        return self._negative_ttl

    @property
    def max_entries(self) -> int:
        return self._max_entries

    def _key(self, token: str) -> bytes:
        # HMAC-SHA256 (RFC 2104) from precomputed pad states: twice as fast as copying an
        # hmac.HMAC, and the hit path is measured in microseconds.
        inner = self._inner.copy()
        inner.update(token.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    async def fetch(self, token: str, load: Loader) -> Result[UserInfo]:
        """The cached outcome for ``token``, or ``load(token)`` shared by concurrent callers."""
        key = self._key(token)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry[0] > now:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return entry[1]
                del self._entries[key]
            self._misses += 1
        return await self._flight.run(key, lambda: self._load(key, token, load))

    async def _load(self, key: bytes, token: str, load: Loader) -> Result[UserInfo]:
        with self._lock:
            self._loads += 1
            generation = self._generation
        result = await load(token)
        lifetime = cache_lifetime(result, self._ttl, self._negative_ttl)
        if lifetime > 0:
            expires = self._clock() + lifetime
            with self._lock:
                if generation == self._generation:
                    self._entries[key] = (expires, result)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max_entries:
                        self._entries.popitem(last=False)
        return result

    async def invalidate(self, token: str) -> None:
        """Forget ``token``; a load already running for it will not be stored."""
        key = self._key(token)
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1
        self._flight.discard(key)

    def clear(self) -> None:
        """Forget every entry (loads already running will not be stored)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, loads and entries so far."""
        with self._lock:
            return CacheStats(
                hits=self._hits, misses=self._misses, loads=self._loads, entries=len(self._entries)
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"<MemoryCache ttl={self._ttl:g} negative_ttl={self._negative_ttl:g} "
            f"entries={len(self)}/{self._max_entries}>"
        )
