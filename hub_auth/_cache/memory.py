"""``MemoryCache``: an in-process whoami cache (TTL + LRU, single-flight, stale-if-error).

The rules it shares with ``RedisCache`` are in ``policy.py``; single-flight and the rate-limit
backoff in ``flight.py``. 401s (with ``negative_ttl``) are kept in a bound of their own, so a
flood of random tokens cannot push valid users out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from hub_auth._cache import CacheStats
from hub_auth._cache.flight import SingleFlight, rate_limited
from hub_auth._cache.policy import (
    MAX_ENDPOINTS,
    REPLACES_STALE,
    STALE_IF,
    CacheBase,
    Loader,
    TokenKeys,
    cache_lifetime,
    check_count,
    check_secret,
    own_copy,
    stale_lifetime,
)
from hub_auth._errors import HubAuthError
from hub_auth._models import UserInfo, compact
from hub_auth._result import Err, Ok, Result

__all__ = ["MemoryCache"]

_Entry = tuple[float, Result[UserInfo], float]
"""(fresh until, result, may be served stale-if-error until), in ``clock()`` seconds."""


class MemoryCache(CacheBase):
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
        key: The MAC key for the cache keys (at least 32 bytes, not a repeated pattern);
            random per process by default.
        stale_ttl: Seconds a successful answer may still be served after ``ttl`` while the
            Hub cannot be asked (network, timeout, 5xx, 429, a rate-limit backoff); never
            after a 401 or 403 for the token, never past the token's expiry. 0 (the default)
            serves nothing stale.
        clock: A monotonic clock in seconds that governs every expiry and backoff (tests
            inject a fake one).
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
        super().__init__(ttl, negative_ttl, stale_ttl, clock=clock)
        self._max_entries = check_count(max_entries, "max_entries")
        self._max_negative_entries = (
            max(1, max_entries // 10)
            if max_negative_entries is None
            else check_count(max_negative_entries, "max_negative_entries")
        )
        self._key = TokenKeys(secrets.token_bytes(32) if key is None else check_secret(key, "key"))
        self._lock = threading.Lock()
        # Successful answers and 401s in two LRU tables with their own bounds.
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._negatives: OrderedDict[bytes, _Entry] = OrderedDict()
        self._flight: SingleFlight[bytes, Result[UserInfo]] = SingleFlight()
        # Bumped by invalidate/clear: a load that started before must not store its answer.
        self._generation = 0
        # Hits, counted under self._lock (held for the lookup anyway), not in self._tally;
        # in a list, so the hit function holds no reference back to the cache.
        self._hits = [0]
        self._lookups: dict[str, Callable[[str], Result[UserInfo] | None]] = {}

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def max_negative_entries(self) -> int:
        return self._max_negative_entries

    async def fetch(self, token: str, load: Loader, *, endpoint: str) -> Result[UserInfo]:
        """The cached outcome for ``token`` at ``endpoint``, or ``load(token)`` shared by
        concurrent callers."""
        hit = self.lookup_for(endpoint)(token)
        if hit is not None:
            return hit
        key = self._key(token, endpoint)  # again: a miss is waiting for the Hub anyway
        self._tally.add("misses")
        return own_copy(await self._flight.run(key, lambda: self._load(key, token, load, endpoint)))

    def lookup(self, token: str, *, endpoint: str) -> Result[UserInfo] | None:
        """What ``fetch`` answers for ``token`` at ``endpoint`` on a hit, or ``None``.

        The same hit as ``fetch`` (fresh entries only, 401s kept with ``negative_ttl``
        included, counted in ``stats().hits``), without a coroutine: ``HubAuth.whoami`` tries
        it first. ``None`` counts nothing; the ``fetch`` that follows counts the miss.
        """
        return self.lookup_for(endpoint)(token)

    def lookup_for(self, endpoint: str) -> Callable[[str], Result[UserInfo] | None]:
        """``lookup`` at one endpoint, as a function of the token alone: what a client keeps
        for its whoami fast path. An entry past its stale window leaves on the way."""
        found = self._lookups.get(endpoint)
        if found is not None:
            return found
        # A closure over the key function, the tables, the lock and the clock (none of them
        # ever replaced): a hit reads no attribute. It is most of a warm request's cost in a
        # service, measured in µs (benchmarks case 5).
        keyer = self._key.for_endpoint(endpoint)
        entries, negatives, lock, clock = self._entries, self._negatives, self._lock, self._clock
        hits = self._hits

        def lookup(token: str) -> Result[UserInfo] | None:
            key = keyer(token)
            now = clock()
            with lock:
                table = entries
                entry = table.get(key)
                if entry is None:
                    table = negatives
                    entry = table.get(key)
                    if entry is None:
                        return None
                if entry[0] <= now:
                    if entry[2] <= now:  # kept past ttl only while it may be served stale
                        del table[key]
                    return None
                table.move_to_end(key)
                hits[0] += 1
            result = entry[1]
            # A kept success is immutable: shared as it is (own_copy copies errors).
            return result if isinstance(result, Ok) else own_copy(result)

        if len(self._lookups) < MAX_ENDPOINTS:  # a client has one; callers few
            self._lookups[endpoint] = lookup
        return lookup

    def on_backoff(self, endpoint: str, seconds: float) -> None:
        """The Hub said to wait ``seconds``: no client of this cache asks it before then."""
        self._rate_limit.heard(endpoint, seconds)

    async def _load(self, key: bytes, token: str, load: Loader, endpoint: str) -> Result[UserInfo]:
        with self._lock:
            generation = self._generation
        remaining = self._rate_limit.remaining(endpoint)
        result: Result[UserInfo]
        if remaining > 0:
            self._tally.add("rate_limited")
            result = rate_limited(remaining)
        else:
            self._tally.add("hub_requests")
            heard = self._rate_limit.heard_count(endpoint)
            result = await load(token)
            self._rate_limit.after_load(endpoint, result, heard)
        if isinstance(result, Err):
            return self._after_error(key, result, generation)
        self._keep(key, generation, result)
        return result

    def _keep(self, key: bytes, generation: int, result: Result[UserInfo]) -> None:
        """Store ``result`` for its lifetime (and stale window), if it may be kept at all."""
        wall = time.time()
        lifetime = cache_lifetime(result, self._ttl, self._negative_ttl, now=wall)
        if lifetime <= 0:
            return
        stale = stale_lifetime(result, self._ttl, self._stale_ttl, now=wall)
        now = self._clock()
        entry = (now + lifetime, result, now + max(lifetime, stale))
        if isinstance(result, Ok):
            compact(result.value)  # before anyone holds it: it replaces the user's orgs
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

    def _after_error(
        self, key: bytes, result: Err[HubAuthError], generation: int
    ) -> Result[UserInfo]:
        """What a miss answers when the Hub (or the backoff) said no: the error, a 401 kept,
        or the stale answer standing in for a failure of the Hub."""
        error = result.error
        if error.kind in REPLACES_STALE:
            with self._lock:
                if generation == self._generation:
                    self._entries.pop(key, None)
            self._keep(key, generation, result)
            return result
        if error.kind in STALE_IF and self._stale_ttl:
            with self._lock:
                entry = self._entries.get(key)
            if entry is None or entry[2] <= self._clock():
                return result
            self._serving_stale(error)
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
        """Forget every entry and backoff (loads already running will not be stored)."""
        with self._lock:
            self._entries.clear()
            self._negatives.clear()
            self._generation += 1
        self._rate_limit.clear()

    def stats(self) -> CacheStats:
        """Hits, misses, Hub requests, stale answers, backoff and entries (successes and 401s)
        so far: a snapshot."""
        with self._lock:
            hits = self._hits[0]
        return self._tally.snapshot(entries=len(self), more_hits=hits)

    def __len__(self) -> int:
        # Not under the lock: two len() reads are atomic enough for a count.
        return len(self._entries) + len(self._negatives)

    def __repr__(self) -> str:
        return (
            f"<MemoryCache ttl={self._ttl:g} negative_ttl={self._negative_ttl:g} "
            f"entries={len(self._entries)}/{self._max_entries} "
            f"negative={len(self._negatives)}/{self._max_negative_entries}>"
        )
