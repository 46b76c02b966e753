"""Whoami caches: what ``HubAuth`` asks of one, and what one reports.

``WhoamiCache`` is the protocol (``MemoryCache`` in ``memory.py``, ``RedisCache`` in
``redis.py``, or your own); ``CacheStats`` is the snapshot ``cache.stats()`` returns, counted by
one ``Tally`` in each cache. The rules both caches follow (keys, lifetimes, stale-if-error) are
in ``policy.py``; single-flight and the rate-limit backoff in ``flight.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from hub_auth._models import UserInfo
from hub_auth._result import Result

__all__ = ["CacheStats", "CountName", "Tally", "WhoamiCache"]


class WhoamiCache(Protocol):
    """What ``HubAuth`` needs from a whoami cache (``MemoryCache``, ``RedisCache``).

    ``endpoint`` is the Hub the answer comes from: a cache shared by clients of several Hubs
    (staging and production) must keep their answers apart.
    """

    async def fetch(
        self, token: str, load: Callable[[str], Awaitable[Result[UserInfo]]], *, endpoint: str
    ) -> Result[UserInfo]:
        """Return the cached outcome for ``token`` at ``endpoint``, or ``load`` it (once for
        concurrent callers)."""
        ...

    async def invalidate(self, token: str, *, endpoint: str) -> None:
        """Forget what is cached for ``token`` at ``endpoint``."""
        ...

    def on_backoff(self, endpoint: str, seconds: float) -> None:
        """The Hub at ``endpoint`` just said to ask nothing for ``seconds`` (a 429, or a quota
        used up). Called by the client the moment it hears it, before it waits to retry, from
        inside the running event loop; a cache shares the wait with every client using it."""
        ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a cache since it was created (for tests, metrics and benchmarks)."""

    hits: int
    """Answers served from the cache."""
    misses: int
    """Lookups that found nothing (concurrent misses of one token count once each)."""
    hub_requests: int
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


CountName = Literal[
    "hits", "misses", "hub_requests", "errors", "stale", "waits", "rate_limited", "backoff_seconds"
]
"""The ``CacheStats`` fields a cache counts (``entries`` is measured, not counted)."""


class Tally:
    """The counters behind ``CacheStats``, safe to bump from several threads."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[CountName, float] = dict.fromkeys(get_args(CountName), 0)

    def add(self, counter: CountName, amount: float = 1) -> None:
        with self._lock:
            self._counts[counter] += amount

    def snapshot(self, entries: int | None, *, more_hits: int = 0) -> CacheStats:
        """The counters now; ``more_hits``: hits the cache counted itself (``MemoryCache``
        counts a hit under the lock it holds for the lookup, rather than take this one too)."""
        with self._lock:
            counts = dict(self._counts)
        counts["hits"] += more_hits
        whole = {name: int(value) for name, value in counts.items() if name != "backoff_seconds"}
        return CacheStats(entries=entries, backoff_seconds=counts["backoff_seconds"], **whole)
