"""``RedisCache``: a whoami cache shared by every replica of a service (extra ``hub_auth[redis]``).

Replicas that share a Redis and a secret share their answers: a token one replica validated is
not sent to the Hub again by another until the entry expires. Keys are ``prefix`` + the hex
HMAC-SHA256 of the endpoint and the token under the shared secret (the token is never stored).

Whoever can write to Redis must not be able to choose an identity, so a value is sealed::

    v2:<expires, unix seconds>:<hex HMAC-SHA256 of version, key, expires, body>:<JSON body>

written with ``SET key value EX seconds`` (never pickle). A value is read with a bounded
``GETRANGE`` (64 KiB), and its MAC is checked with ``hmac.compare_digest`` before its body is
parsed. A value that is too large, not a string, not ``v2``, forged, moved from another key or
past its own expiry (say someone ran ``PERSIST`` on it) is a miss for that key alone: the Hub
is asked, the value is replaced, and Redis is not put aside.

The cache must never be why a request fails. Every Redis operation is bounded by ``timeout``;
when Redis is unreachable, slow or answers garbage, the request goes to the Hub, one warning is
logged, and Redis is left alone for ``backoff`` seconds before it is tried again (an info line
says when it works again).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
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
    own_copy,
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

MAX_VALUE_BYTES = 64 * 1024
"""Values longer than this are not read whole, let alone parsed: a miss."""

_VERSION = b"v2"
_FAILED: Any = object()
_BAD_VALUE: Any = object()  # Redis answered, but not with a string (WRONGTYPE, bad UTF-8)


class _Unusable(Enum):
    EXPIRED = "expired"  # ours, but past its own expiry: a plain miss
    INVALID = "invalid"  # not ours, tampered, too large or unreadable: a miss worth a warning


class _StoredError(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["unauthorized"]
    message: str
    status: int | None = None
    request_id: str | None = None


class _Stored(BaseModel):
    """The body of a value: ``{"user": {...}}`` or ``{"error": {...}}``."""

    model_config = ConfigDict(frozen=True)

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


def _body(result: Result[UserInfo]) -> bytes:
    if isinstance(result, Ok):
        return b'{"user":%s}' % result.value.model_dump_json().encode()
    error = result.error
    stored = _StoredError(
        kind="unauthorized",
        message=error.message,
        status=error.status,
        request_id=error.request_id,
    )
    return b'{"error":%s}' % stored.model_dump_json().encode()


def value_mac_key(secret: bytes) -> bytes:
    """The key of the value MACs, derived from the shared secret: a value MAC and a cache key
    (which anyone reading Redis sees) are never made under the same key."""
    return hmac.new(secret, b"hub_auth redis value mac v2", hashlib.sha256).digest()


def _mac(mac_key: bytes, key: str, expires: bytes, body: bytes) -> bytes:
    # ``expires`` is digits only and ``key`` is ours, so the fields cannot run into each other.
    message = b"\0".join((_VERSION, key.encode(), expires, body))
    return hmac.new(mac_key, message, hashlib.sha256).hexdigest().encode()


def seal(mac_key: bytes, key: str, expires: int, result: Result[UserInfo]) -> bytes:
    """The Redis value of ``result`` under ``key``, good until ``expires`` (unix seconds)."""
    stamp = str(expires).encode()
    body = _body(result)
    return b":".join((_VERSION, stamp, _mac(mac_key, key, stamp, body), body))


def unseal(mac_key: bytes, key: str, raw: bytes | str, now: float) -> Result[UserInfo] | _Unusable:
    """The result sealed in ``raw`` for ``key``, checked before anything is parsed."""
    if isinstance(raw, str):  # a client with decode_responses=True
        raw = raw.encode()
    if len(raw) > MAX_VALUE_BYTES:
        return _Unusable.INVALID
    version, _, rest = raw.partition(b":")
    stamp, _, rest = rest.partition(b":")
    mac, _, body = rest.partition(b":")
    if version != _VERSION or not stamp.isdigit() or len(stamp) > 12:
        return _Unusable.INVALID
    if not hmac.compare_digest(mac, _mac(mac_key, key, stamp, body)):
        return _Unusable.INVALID
    if int(stamp) <= now:
        return _Unusable.EXPIRED
    try:
        result = _Stored.model_validate_json(body).result()
    except ValidationError:
        result = None
    return _Unusable.INVALID if result is None else result


class RedisCache:
    """A whoami cache in Redis, shared by every replica that uses the same ``secret``.

    ::

        import redis.asyncio as redis
        from hub_auth import HubAuth, MemoryCache, RedisCache

        cache = RedisCache(
            redis.Redis.from_url("redis://cache:6379/0"),
            # The same on every replica; make one with secrets.token_urlsafe(32).
            secret=os.environ["HUB_AUTH_CACHE_SECRET"],
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
        secret: The HMAC key the replicas share: at least 32 bytes and not a repeated
            pattern (``secrets.token_urlsafe(32)`` makes one). Keep it secret: with it,
            whoever can write to Redis can forge answers, and whoever can read Redis can
            test guessed tokens against the keys.
        negative_ttl: Seconds a 401 is kept (0, the default, keeps none; else at least 1).
        timeout: Seconds one Redis operation may take before the Hub is asked instead.
        local: An optional ``MemoryCache`` consulted before Redis (keep its ``ttl`` short:
            an invalidation on another replica does not reach it; its
            ``max_negative_entries`` bounds the 401s it keeps).
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
        self._mac_key = value_mac_key(self._secret)
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

    def key(self, token: str, *, endpoint: str) -> str:
        """The Redis key of ``token`` at ``endpoint`` (``prefix`` + hex HMAC-SHA256 under the
        secret)."""
        return self._prefix + token_key(self._secret, token, endpoint)

    # -- WhoamiCache -------------------------------------------------------------------------

    async def fetch(self, token: str, load: Loader, *, endpoint: str) -> Result[UserInfo]:
        """The cached outcome for ``token`` at ``endpoint`` (local, then Redis), or
        ``load(token)`` once."""
        if self._local is not None:
            return await self._local.fetch(
                token, lambda plain: self._fetch_shared(plain, load, endpoint), endpoint=endpoint
            )
        return own_copy(await self._fetch_shared(token, load, endpoint))

    async def invalidate(self, token: str, *, endpoint: str) -> None:
        """Forget ``token`` here and in Redis (other replicas' ``local`` caches keep theirs)."""
        key = self.key(token, endpoint=endpoint)
        with self._lock:
            self._generation += 1
        self._flight.discard(key)
        if self._local is not None:
            await self._local.invalidate(token, endpoint=endpoint)
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

    async def _fetch_shared(self, token: str, load: Loader, endpoint: str) -> Result[UserInfo]:
        key = self.key(token, endpoint=endpoint)
        return await self._flight.run(key, lambda: self._get_or_load(key, token, load))

    async def _get_or_load(self, key: str, token: str, load: Loader) -> Result[UserInfo]:
        invalid = False
        if self._usable():
            # At most MAX_VALUE_BYTES + 1 bytes: a larger value is never read whole.
            raw = await self._call("GETRANGE", self._redis.getrange, key, 0, MAX_VALUE_BYTES)
            if raw is _FAILED or not raw:  # b"" (or None): no such key
                pass
            elif raw is _BAD_VALUE or not isinstance(raw, bytes | str):
                invalid = True
            else:
                cached = unseal(self._mac_key, key, raw, time.time())
                if not isinstance(cached, _Unusable):
                    with self._lock:
                        self._hits += 1
                    return cached
                invalid = cached is _Unusable.INVALID
            if invalid:
                self._unreadable()
        with self._lock:
            self._misses += 1
            self._loads += 1
            generation = self._generation
        result = await load(token)
        seconds = int(cache_lifetime(result, self._ttl, self._negative_ttl))
        if generation == self._generation and self._usable():
            if seconds >= 1:
                # Wall-clock expiry inside the value: replicas share it, Redis's own TTL
                # does not protect it (PERSIST, a restored snapshot).
                value = seal(self._mac_key, key, int(time.time()) + seconds, result)
                await self._call("SET", self._redis.set, key, value, ex=seconds)
            elif invalid:
                await self._call("DEL", self._redis.delete, key)
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
            if _is_bad_value(exc):
                self._recovered()
                return _BAD_VALUE
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
        # Redis works, one value does not (another program's key, a future format, a forgery):
        # the fresh answer will replace it, and Redis is not put aside for it.
        with self._lock:
            self._errors += 1
            first, self._warned_unreadable = not self._warned_unreadable, True
        log = logger.warning if first else logger.debug
        log(
            "redis cache: a value under prefix %r is not a valid hub_auth entry (another "
            "program's key, an older format, or tampered with); asking the Hub and replacing it",
            self._prefix,
        )


def _is_bad_value(exc: Exception) -> bool:
    """Whether Redis answered, but about a value that is not a string we can read."""
    if isinstance(exc, UnicodeDecodeError):  # decode_responses=True and bytes that are not UTF-8
        return True
    try:
        from redis.exceptions import ResponseError
    except ImportError:  # pragma: no cover - a client that is not redis-py
        return False
    return isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE")


def _describe(exc: BaseException) -> str:
    text = scrub(str(exc))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
