"""``RedisCache``: a whoami cache shared by every replica of a service (extra ``hub_auth[redis]``).

Replicas that share a Redis and a secret share their answers: a token one replica validated is
not sent to the Hub again by another until the entry expires. Keys are ``prefix`` + the hex
HMAC-SHA256 of the token under the shared secret (the token is never stored); values are JSON
written with ``SET key value EX seconds`` (never pickle: a value read back is parsed, not run).

The cache must never be why a request fails. Every Redis operation is bounded by ``timeout``;
when Redis is unreachable, slow or answers garbage, the request goes to the Hub, one warning is
logged, and Redis is left alone for ``backoff`` seconds before it is tried again (an info line
says when it works again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from hub_auth._cache import (
    CacheStats,
    Loader,
    MemoryCache,
    SingleFlight,
    cache_lifetime,
    check_seconds,
    check_secret,
    token_key,
)
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._models import UserInfo
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import scrub

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisCache"]

logger = logging.getLogger("hub_auth")

_FORMAT = 1
_FAILED: Any = object()


class _StoredError(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["unauthorized"]
    message: str
    status: int | None = None
    request_id: str | None = None


class _Stored(BaseModel):
    """A value in Redis: ``{"v": 1, "user": {...}}`` or ``{"v": 1, "error": {...}}``."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1]
    user: UserInfo | None = None
    error: _StoredError | None = None

    def result(self) -> Result[UserInfo] | None:
        if self.user is not None and self.error is None:
            return Ok(self.user)
        if self.error is not None and self.user is None:
            error = self.error
            return Err(
                HubAuthError(
                    ErrorKind.UNAUTHORIZED,
                    error.message,
                    status=error.status,
                    request_id=error.request_id,
                )
            )
        return None


def _encode(result: Result[UserInfo]) -> str:
    if isinstance(result, Ok):
        return f'{{"v":{_FORMAT},"user":{result.value.model_dump_json()}}}'
    error = result.error
    stored = _StoredError(
        kind="unauthorized",
        message=error.message,
        status=error.status,
        request_id=error.request_id,
    )
    return f'{{"v":{_FORMAT},"error":{stored.model_dump_json()}}}'


def _decode(raw: bytes | str) -> Result[UserInfo] | None:
    try:
        return _Stored.model_validate_json(raw).result()
    except ValidationError:
        return None


class RedisCache:
    """A whoami cache in Redis, shared by every replica that uses the same ``secret``.

    ::

        import redis.asyncio as redis
        from hub_auth import HubAuth, MemoryCache, RedisCache

        cache = RedisCache(
            redis.Redis.from_url("redis://cache:6379/0"),
            secret=os.environ["HUB_AUTH_CACHE_SECRET"],  # the same on every replica
            local=MemoryCache(ttl=5.0),  # optional: skip Redis for very hot tokens
        )
        auth = HubAuth(cache=cache)

    Concurrent misses for one token share one Redis lookup and at most one Hub request per
    process (single-flight). The Redis client is the caller's: RedisCache never closes it,
    and like any ``redis.asyncio`` client it belongs to the event loop that uses it.

    Args:
        redis: A ``redis.asyncio.Redis`` client (``decode_responses`` may be on or off).
        ttl: Seconds a successful answer is kept (whole seconds, at least 1; never past the
            token's own expiry).
        prefix: Prefix of every key.
        secret: The HMAC key (at least 16 bytes) the replicas share; keep it secret, as a
            leaked one lets whoever can read Redis test guessed tokens against the keys.
        negative_ttl: Seconds a 401 is kept (0, the default, keeps none; else at least 1).
        timeout: Seconds one Redis operation may take before the Hub is asked instead.
        local: An optional ``MemoryCache`` consulted before Redis (keep its ``ttl`` short:
            an invalidation on another replica does not reach it).
        backoff: Seconds Redis is left alone after it failed.
        clock: A monotonic clock in seconds (tests inject a fake one).
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        ttl: float = 60.0,
        prefix: str = "hub_auth:",
        secret: bytes | str,
        negative_ttl: float = 0.0,
        timeout: float = 0.25,
        local: MemoryCache | None = None,
        backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = check_secret(secret, "secret")
        self._ttl = check_seconds(ttl, "ttl", minimum=1.0, allow_zero=False)
        self._negative_ttl = check_seconds(
            negative_ttl, "negative_ttl", minimum=1.0, allow_zero=True
        )
        self._timeout = check_seconds(timeout, "timeout", allow_zero=False)
        self._backoff = check_seconds(backoff, "backoff", allow_zero=True)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if local is not None and not isinstance(local, MemoryCache):
            raise TypeError(f"local must be a MemoryCache, not {type(local).__name__}")
        self._redis = redis
        self._prefix = prefix
        self._local = local
        self._clock = clock
        self._flight: SingleFlight[str, Result[UserInfo]] = SingleFlight()
        self._lock = threading.Lock()
        self._generation = 0
        self._down_until: float | None = None  # set while Redis is failing
        self._warned_unreadable = False
        self._hits = 0
        self._misses = 0
        self._loads = 0
        self._errors = 0

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def negative_ttl(self) -> float:
        return self._negative_ttl

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def local(self) -> MemoryCache | None:
        return self._local

    @property
    def available(self) -> bool:
        """False while Redis is considered down (after a failure, for ``backoff`` seconds)."""
        return self._down_until is None

    def key(self, token: str) -> str:
        """The Redis key of ``token`` (``prefix`` + hex HMAC-SHA256 under the secret)."""
        return self._prefix + token_key(self._secret, token)

    # -- WhoamiCache -------------------------------------------------------------------------

    async def fetch(self, token: str, load: Loader) -> Result[UserInfo]:
        """The cached outcome for ``token`` (local, then Redis), or ``load(token)`` once."""
        if self._local is not None:
            return await self._local.fetch(token, lambda plain: self._fetch_shared(plain, load))
        return await self._fetch_shared(token, load)

    async def invalidate(self, token: str) -> None:
        """Forget ``token`` here and in Redis (other replicas' ``local`` caches keep theirs)."""
        key = self.key(token)
        with self._lock:
            self._generation += 1
        self._flight.discard(key)
        if self._local is not None:
            await self._local.invalidate(token)
        # Tried even while Redis is considered down: a stale entry must not outlive recovery.
        await self._call("DEL", self._redis.delete, key)

    @property
    def stats(self) -> CacheStats:
        """Redis hits and misses, Hub loads and Redis failures so far (``entries`` unknown)."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                entries=None,
                errors=self._errors,
            )

    def __repr__(self) -> str:
        state = "up" if self.available else "down"
        return f"<RedisCache prefix={self._prefix!r} ttl={self._ttl:g} redis={state}>"

    # -- internals ---------------------------------------------------------------------------

    async def _fetch_shared(self, token: str, load: Loader) -> Result[UserInfo]:
        key = self.key(token)
        return await self._flight.run(key, lambda: self._get_or_load(key, token, load))

    async def _get_or_load(self, key: str, token: str, load: Loader) -> Result[UserInfo]:
        if self._usable():
            raw = await self._call("GET", self._redis.get, key)
            if raw is not _FAILED and raw is not None:
                cached = _decode(raw) if isinstance(raw, bytes | str) else None
                if cached is not None:
                    with self._lock:
                        self._hits += 1
                    return cached
                self._unreadable()
        with self._lock:
            self._misses += 1
            self._loads += 1
            generation = self._generation
        result = await load(token)
        seconds = int(cache_lifetime(result, self._ttl, self._negative_ttl))
        if seconds >= 1 and generation == self._generation and self._usable():
            await self._call("SET", self._redis.set, key, _encode(result), ex=seconds)
        return result

    def _usable(self) -> bool:
        down_until = self._down_until
        return down_until is None or self._clock() >= down_until

    async def _call(self, name: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await method(*args, **kwargs)`` within ``timeout``; ``_FAILED`` when it fails."""
        try:
            async with asyncio.timeout(self._timeout):
                value = await method(*args, **kwargs)
        # The cache must never fail a request: whatever the client raises (connection,
        # protocol, a misconfigured client), the answer comes from the Hub instead.
        except Exception as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else _describe(exc)
            self._failed(name, reason)
            return _FAILED
        self._recovered()
        return value

    def _failed(self, operation: str, reason: str) -> None:
        with self._lock:
            self._errors += 1
            first = self._down_until is None
            self._down_until = self._clock() + self._backoff
        if first:
            logger.warning(
                "redis cache unavailable (%s: %s); asking the Hub directly until it is back",
                operation,
                reason,
            )

    def _recovered(self) -> None:
        if self._down_until is None:
            return
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        if was_down:
            logger.info("redis cache reachable again")

    def _unreadable(self) -> None:
        # Redis works, one value does not (another program's key, a future format): the
        # fresh answer will replace it, and Redis is not put aside for it.
        with self._lock:
            self._errors += 1
            first, self._warned_unreadable = not self._warned_unreadable, True
        log = logger.warning if first else logger.debug
        log(
            "redis cache: a value under prefix %r is not a hub_auth entry; asking the Hub and "
            "replacing it",
            self._prefix,
        )


def _describe(exc: BaseException) -> str:
    text = scrub(str(exc))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
