"""Server-side session stores for ``HubOAuth``: in memory (one process) or in Redis (replicas).

A store maps a key to a JSON string for a limited time. ``HubOAuth`` never gives it the
session id the browser holds: the key is the SHA-256 of that id, so whoever reads the store
(a Redis dump) cannot turn a key back into a usable cookie. The values hold the user's tokens:
keep the store private (Redis with a password, on a private network).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["MemorySessionStore", "RedisSessionStore", "SessionStore"]

logger = logging.getLogger("hub_auth")


PENDING_LOGIN_PREFIX = "login:"
"""Keys of sign-ins in progress start with this (session keys are hex digests)."""


@runtime_checkable
class SessionStore(Protocol):
    """Where ``HubOAuth`` keeps sessions; every method may be called from many requests."""

    async def load(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        ...

    async def save(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (replacing any older value)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (no error when absent)."""
        ...

    def lock(self, key: str, seconds: float) -> AbstractAsyncContextManager[None]:
        """Held while one process refreshes ``key``'s tokens, so replicas that share the store
        do not refresh one session twice (the provider rotates refresh tokens: the second
        refresh would be refused and end the session). ``HubOAuth`` already serialises the
        refreshes of one process; a store used by one process may return a no-op. Give up
        waiting after ``seconds`` and proceed."""
        ...


class MemorySessionStore:
    """Sessions in this process's memory: lost on restart, not shared between replicas.

    At most ``max_sessions`` are kept; beyond that the least recently saved one is dropped
    (its user signs in again), so a flood of sign-in attempts cannot exhaust memory. Sign-ins
    in progress (keys starting with ``PENDING_LOGIN_PREFIX``, saved by anonymous visits to the
    login route) have a bound of their own, ``max_pending_logins``, so such a flood can never
    push signed-in users out.
    """

    def __init__(self, *, max_sessions: int = 100_000, max_pending_logins: int = 10_000) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, not {max_sessions}")
        if max_pending_logins < 1:
            raise ValueError(f"max_pending_logins must be >= 1, not {max_pending_logins}")
        self._max = max_sessions
        self._max_pending = max_pending_logins
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def _table(self, key: str) -> tuple[OrderedDict[str, tuple[str, float]], int]:
        if key.startswith(PENDING_LOGIN_PREFIX):
            return self._pending, self._max_pending
        return self._entries, self._max

    def __len__(self) -> int:
        with self._lock:
            now = time.monotonic()
            return sum(1 for _, deadline in self._entries.values() if deadline > now)

    async def load(self, key: str) -> str | None:
        table, _ = self._table(key)
        with self._lock:
            entry = table.get(key)
            if entry is None:
                return None
            value, deadline = entry
            if deadline <= time.monotonic():
                del table[key]
                return None
            return value

    async def save(self, key: str, value: str, ttl: float) -> None:
        table, bound = self._table(key)
        with self._lock:
            table.pop(key, None)
            table[key] = (value, time.monotonic() + ttl)
            while len(table) > bound:
                table.popitem(last=False)

    async def delete(self, key: str) -> None:
        table, _ = self._table(key)
        with self._lock:
            table.pop(key, None)

    def lock(self, key: str, seconds: float) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # one process: HubOAuth's own lock is enough


class RedisSessionStore:
    """Sessions in Redis, shared by every replica of the app (extra ``hub_auth[redis]``).

    ``redis`` is a ``redis.asyncio.Redis`` client, the same kind ``RedisCache`` takes; it is
    the caller's and is never closed here. Values are written with ``SET key value PX ms``,
    so Redis itself expires them.
    """

    def __init__(self, redis: redis.asyncio.Redis, *, prefix: str = "hub_auth:session:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def load(self, key: str) -> str | None:
        value = await self._redis.get(self._prefix + key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def save(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, math.ceil(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    @contextlib.asynccontextmanager
    async def lock(self, key: str, seconds: float) -> AsyncIterator[None]:
        """A Redis lock (redis-py's ``Lock``: ``SET NX PX`` and a token checked on release)."""
        lock = self._redis.lock(
            f"{self._prefix}lock:{key}",
            timeout=2 * seconds,  # expires even if this process dies holding it
            blocking_timeout=seconds,
            thread_local=False,
            raise_on_release_error=False,
        )
        acquired = await lock.acquire()
        if not acquired:
            logger.warning(
                "Sign in with Hugging Face: refresh lock not acquired; refreshing anyway"
            )
        try:
            yield
        finally:
            if acquired:
                await lock.release()
