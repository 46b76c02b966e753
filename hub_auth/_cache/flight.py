"""Asking the Hub as little as possible: single-flight and the rate-limit backoff.

Single-flight: concurrent misses for one token in one event loop share a single load; the
load runs as its own task, so a caller that is cancelled leaves the others (and the load) alone.
A cache may be shared by several event loops in several threads (an application's loop and a
sync facade's own loop thread): state is guarded by a ``threading.Lock`` that is never held
across an ``await``, and a load is only ever joined from the loop that started it.

Rate-limit backoff: after a 429 that says when to come back (``WhoamiCache.on_backoff``, or the
429 a load returns), a cache asks the Hub about no token at that endpoint until then; misses get
the stale answer if there is one, else ``Err(rate_limited)`` with ``retry_after``, without a
request. ``HubClient`` does the same for one client; ``Backoff`` extends it to every client
sharing the cache, and ``RedisCache`` to every replica.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from hub_auth._cache import Tally
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Err, Result

__all__ = ["MAX_BACKOFF", "Backoff", "SingleFlight", "backoff_wait", "rate_limited"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_BACKOFF = 300.0
"""The longest a 429 keeps a cache from asking the Hub (the Hub's rate-limit window)."""


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


def backoff_wait(result: Result[UserInfo]) -> float | None:
    """Seconds the Hub asked us to leave it alone (a 429 with ``retry_after``), capped at
    ``MAX_BACKOFF``; ``None`` for any other outcome."""
    if isinstance(result, Err) and result.error.kind is ErrorKind.RATE_LIMITED:
        wait = result.error.retry_after
        if wait is not None and wait > 0:
            return min(wait, MAX_BACKOFF)
    return None


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


class Backoff:
    """The rate-limit backoff of one cache in this process, per endpoint, on the cache's clock.

    ``heard`` is what ``on_backoff`` calls; ``heard_count`` lets a load tell whether the wait
    its own 429 carries was already heard (and counted) that way.
    """

    __slots__ = ("_clock", "_heard", "_lock", "_tally", "_until")

    def __init__(self, clock: Callable[[], float], tally: Tally) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._tally = tally
        # endpoint -> clock() before which the Hub is not asked.
        self._until: dict[str, float] = {}
        self._heard: dict[str, int] = {}

    def remaining(self, endpoint: str) -> float:
        """Seconds left of the backoff for ``endpoint`` (0 when there is none)."""
        with self._lock:
            return max(0.0, self._until.get(endpoint, 0.0) - self._clock())

    def extend(self, endpoint: str, wait: float, *, counted: bool) -> bool:
        """Back off ``wait`` seconds from now unless a longer backoff is on; whether this one
        is longer (``counted`` adds it to ``stats().backoff_seconds`` then)."""
        with self._lock:
            until = self._clock() + wait
            if until <= self._until.get(endpoint, 0.0):
                return False
            self._until[endpoint] = until
        if counted:
            self._tally.add("backoff_seconds", wait)
        return True

    def heard(self, endpoint: str, wait: float) -> bool:
        """The Hub said to wait (``on_backoff``): ``extend``, counted."""
        with self._lock:
            self._heard[endpoint] = self._heard.get(endpoint, 0) + 1
        return self.extend(endpoint, min(wait, MAX_BACKOFF), counted=True)

    def heard_count(self, endpoint: str) -> int:
        with self._lock:
            return self._heard.get(endpoint, 0)

    def after_load(self, endpoint: str, result: Result[UserInfo], heard_before: int) -> bool:
        """Back off after a load's 429; whether the backoff is longer than the one known.

        Counted when the Hub said it (status 429, not a backoff's remainder) and no
        ``on_backoff`` during the load already counted it."""
        if not isinstance(result, Err) or (wait := backoff_wait(result)) is None:
            return False
        counted = result.error.status == 429 and self.heard_count(endpoint) == heard_before
        return self.extend(endpoint, wait, counted=counted)

    def clear(self) -> None:
        with self._lock:
            self._until.clear()
