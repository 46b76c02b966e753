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

At scale (several processes or replicas behind one egress IP, one Hub quota):

- Single-flight across replicas: on a miss, a process takes a short lock for that key
  (``SET <key>:lock <random> NX PX``), asks the Hub and stores the answer; the others
  poll for it (``wait_for_replica`` seconds at most; when the holder dies or its answer is not
  kept, they ask themselves). Redis failures mean asking the Hub, as always.
- Stale-if-error (``stale_ttl``): a successful answer stays in Redis ``stale_ttl`` seconds past
  its freshness, the end of that window sealed in the value's body (``"stale_until"``; older
  readers ignore it and see an expired value). It is served only when the Hub cannot answer.
- Shared rate-limit backoff: when the Hub says to wait (``on_backoff``, the moment a 429 or
  a used-up quota arrives, or a load's 429), ``<prefix>backoff:<endpoint hash>`` is set to the
  end of the wait (unix seconds, at most 300 s ahead); until then no replica asks the Hub: a
  miss gets the stale answer or ``Err(rate_limited)`` with ``retry_after``.

Redis Cluster (``redis.asyncio.RedisCluster``): every command here names one key (no script,
no multi-key command), so a token's value, its lock and the backoff stamps spread over the
masters by their own slots. A master that fails is a Redis failure like any other: the request
goes to the Hub (or ``local``, or a stale answer when the Hub cannot answer either) and the
cache is tried again ``backoff`` seconds later, by then with the replica that took over.

Time: every expiry above (a value's freshness, its stale window, the backoff, the wait for
another replica, the pause after a Redis failure) is decided by the injected ``clock`` (unix
seconds, ``time.time`` by default) against stamps; Redis's ``EX``/``PX`` only evict.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from hub_auth._cache import CacheStats
from hub_auth._cache.flight import MAX_BACKOFF, SingleFlight, rate_limited
from hub_auth._cache.memory import MemoryCache
from hub_auth._cache.policy import (
    REPLACES_STALE,
    STALE_IF,
    CacheBase,
    Loader,
    cache_lifetime,
    check_seconds,
    check_secret,
    own_copy,
    stale_lifetime,
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


@dataclass(frozen=True, slots=True)
class Stale:
    """A sealed success past its freshness, still inside its stale-if-error window."""

    result: Ok[UserInfo]


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
    stale_until: int | None = None
    """Unix seconds until which an expired success may be served stale-if-error."""

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


def _body(result: Result[UserInfo], stale_until: int | None = None) -> bytes:
    if isinstance(result, Ok):
        user = result.value.model_dump_json().encode()
        if stale_until is not None:
            return b'{"user":%s,"stale_until":%d}' % (user, stale_until)
        return b'{"user":%s}' % user
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


def seal(
    mac_key: bytes,
    key: str,
    expires: int,
    result: Result[UserInfo],
    *,
    stale_until: int | None = None,
) -> bytes:
    """The Redis value of ``result`` under ``key``, good until ``expires`` (unix seconds), a
    success servable stale-if-error until ``stale_until``."""
    stamp = str(expires).encode()
    body = _body(result, stale_until)
    return b":".join((_VERSION, stamp, _mac(mac_key, key, stamp, body), body))


def unseal(
    mac_key: bytes, key: str, raw: bytes | str, now: float
) -> Result[UserInfo] | Stale | _Unusable:
    """The result sealed in ``raw`` for ``key``, checked before anything is parsed; ``Stale``
    when it is past its freshness but inside its sealed stale-if-error window."""
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
    expired = int(stamp) <= now
    if expired and b'"stale_until"' not in body:
        return _Unusable.EXPIRED  # the common case, decided without parsing
    try:
        stored = _Stored.model_validate_json(body)
        result = stored.result()
    except ValidationError:
        result = None
    if result is None:
        return _Unusable.INVALID
    if expired:
        if isinstance(result, Ok) and stored.stale_until is not None and stored.stale_until > now:
            return Stale(result)
        return _Unusable.EXPIRED
    return result


class RedisCache(CacheBase):
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
        redis: A ``redis.asyncio.Redis`` client, or a ``redis.asyncio.RedisCluster`` for a
            Redis Cluster (``decode_responses`` may be on or off).
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
        stale_ttl: Seconds a successful answer may still be served after ``ttl`` while the
            Hub cannot be asked (network, timeout, 5xx, 429, the shared backoff); never after
            a 401 or 403 for the token, never past the token's expiry. 0 (the default) serves
            nothing stale; else whole seconds.
        wait_for_replica: Seconds a miss waits for another process that is already asking
            the Hub about the same token (single-flight across replicas) before asking
            itself; 0 turns the Redis lock off.
        clock: The time in unix seconds (``time.time`` by default; tests inject a fake one).
            It governs every expiry: a value's freshness and stale window are stamps in it
            that every replica compares with its own ``clock()``, and so are the shared
            backoff, the wait for another replica and the pause after a Redis failure.
            Redis's own expiry (``EX``, ``PX``) only evicts what the stamps already expired.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        ttl: float = 60.0,
        prefix: str = "hub_auth:",
        secret: bytes | str,
        negative_ttl: float = 0.0,
        timeout: float = 0.25,
        local: MemoryCache | None = None,
        backoff: float = 5.0,
        stale_ttl: float = 0.0,
        wait_for_replica: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = check_secret(secret, "secret")
        self._mac_key = value_mac_key(self._secret)
        super().__init__(ttl, negative_ttl, stale_ttl, clock=clock, minimum=1.0)
        self._timeout = check_seconds(timeout, "timeout", allow_zero=False)
        self._backoff = check_seconds(backoff, "backoff", allow_zero=True)
        self._wait_for_replica = check_seconds(
            wait_for_replica, "wait_for_replica", allow_zero=True
        )
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if local is not None and not isinstance(local, MemoryCache):
            raise TypeError(f"local must be a MemoryCache, not {type(local).__name__}")
        self._redis = redis
        self._prefix = prefix
        self._local = local
        self._flight: SingleFlight[str, Result[UserInfo]] = SingleFlight()
        self._lock = threading.Lock()
        self._generation = 0
        self._down_until: float | None = None  # set while Redis is failing
        self._warned_unreadable = False
        self._sharing: set[asyncio.Task[None]] = set()

    @property
    def wait_for_replica(self) -> float:
        return self._wait_for_replica

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

    @property
    def retry_in(self) -> float | None:
        """Seconds before Redis is tried again while it is set aside (0: at the next call);
        ``None`` while it is available."""
        down_until = self._down_until
        return None if down_until is None else max(0.0, down_until - self._clock())

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

    def on_backoff(self, endpoint: str, seconds: float) -> None:
        """The Hub said to wait ``seconds`` (the client will wait, then retry): tell the other
        replicas now, not when the call returns."""
        if self._rate_limit.heard(endpoint, seconds):
            task = asyncio.get_running_loop().create_task(
                self._share_backoff(endpoint, min(seconds, MAX_BACKOFF))
            )
            self._sharing.add(task)
            task.add_done_callback(self._sharing.discard)

    def stats(self) -> CacheStats:
        """Redis hits and misses, Hub requests, Redis failures, stale answers, waits for
        another replica and the rate-limit backoff so far (``entries`` unknown): a snapshot."""
        return self._tally.snapshot(entries=None)

    def __repr__(self) -> str:
        state = "up" if self.available else "down"
        return f"<RedisCache prefix={self._prefix!r} ttl={self._ttl:g} redis={state}>"

    # -- internals ---------------------------------------------------------------------------

    async def _fetch_shared(self, token: str, load: Loader, endpoint: str) -> Result[UserInfo]:
        key = self.key(token, endpoint=endpoint)
        return await self._flight.run(key, lambda: self._get_or_load(key, token, load, endpoint))

    async def _read(self, key: str) -> Result[UserInfo] | Stale | _Unusable | None:
        """The value under ``key``: a result, ``Stale``, ``_Unusable``, or ``None`` (no
        value, or Redis failed)."""
        # At most MAX_VALUE_BYTES + 1 bytes: a larger value is never read whole.
        raw = await self._call("GETRANGE", self._redis.getrange, key, 0, MAX_VALUE_BYTES)
        if raw is _FAILED or not raw:  # b"" (or None): no such key
            return None
        if raw is _BAD_VALUE or not isinstance(raw, bytes | str):
            return _Unusable.INVALID
        return unseal(self._mac_key, key, raw, self._clock())

    async def _get_or_load(
        self, key: str, token: str, load: Loader, endpoint: str
    ) -> Result[UserInfo]:
        invalid = False
        stale: Stale | None = None
        if self._usable():
            cached = await self._read(key)
            if isinstance(cached, Ok | Err):
                self._tally.add("hits")
                return cached
            stale = cached if isinstance(cached, Stale) else None
            invalid = cached is _Unusable.INVALID
            if invalid:
                self._unreadable()
        self._tally.add("misses")
        with self._lock:
            generation = self._generation
        if (limited := await self._while_backing_off(endpoint, stale)) is not None:
            return limited
        lock = await self._take_lock(key)
        if lock is None:  # another process is asking the Hub: wait for its answer
            answer = await self._wait_for_answer(key)
            if answer is not None:
                return answer
            # No answer stored: the holder may have been rate-limited, and then it shared a
            # backoff that must stop us too (rather than every waiter asking at once).
            if (limited := await self._while_backing_off(endpoint, stale)) is not None:
                return limited
        elif lock:
            # The lock was free: its last holder may have stored the answer since our read.
            cached = await self._read(key)
            if isinstance(cached, Ok | Err):
                await self._release(key, lock)
                self._tally.add("waits")
                return cached
        heard = self._rate_limit.heard_count(endpoint)
        try:
            self._tally.add("hub_requests")
            result = await load(token)
            if self._sharing:  # a backoff heard during the load: shared before we answer
                loop = asyncio.get_running_loop()
                ours = [task for task in list(self._sharing) if task.get_loop() is loop]
                if ours:
                    await asyncio.wait(ours)
            await self._keep(key, result, generation, endpoint, invalid or stale is not None, heard)
        finally:
            if lock:
                await self._release(key, lock)
        match result:
            case Err():
                return self._stale_or(result, stale)
            case _:
                return result

    async def _keep(
        self,
        key: str,
        result: Result[UserInfo],
        generation: int,
        endpoint: str,
        replaces: bool,
        heard: int,
    ) -> None:
        """Store ``result`` under ``key`` (or drop what is there), start a backoff on a 429."""
        if self._rate_limit.after_load(endpoint, result, heard):
            await self._share_backoff(endpoint, self._rate_limit.remaining(endpoint))
        now = int(self._clock())
        seconds = int(cache_lifetime(result, self._ttl, self._negative_ttl, now=now))
        if generation != self._generation or not self._usable():
            return
        if seconds >= 1:
            stale_seconds = int(stale_lifetime(result, self._ttl, self._stale_ttl, now=now))
            stale_until = now + stale_seconds if stale_seconds > seconds else None
            # The expiry inside the value decides (on the clock): replicas share it, and
            # Redis's own TTL does not protect it (PERSIST, a restored snapshot).
            value = seal(self._mac_key, key, now + seconds, result, stale_until=stale_until)
            await self._call("SET", self._redis.set, key, value, ex=max(seconds, stale_seconds))
        elif replaces and (isinstance(result, Ok) or result.error.kind in REPLACES_STALE):
            # An unreadable value, or a stale one the Hub has now refused: gone.
            await self._call("DEL", self._redis.delete, key)

    async def _while_backing_off(
        self, endpoint: str, stale: Stale | None
    ) -> Result[UserInfo] | None:
        """The answer while a rate-limit backoff lasts (stale, or ``Err(rate_limited)``);
        ``None`` when the Hub may be asked."""
        remaining = await self._backoff_remaining(endpoint)
        if remaining <= 0:
            return None
        self._tally.add("rate_limited")
        return self._stale_or(rate_limited(remaining), stale)

    def _stale_or(self, result: Err[HubAuthError], stale: Stale | None) -> Result[UserInfo]:
        """The stale answer when ``result`` says the Hub cannot be asked, else ``result``."""
        error = result.error
        if stale is None or error.kind not in STALE_IF:
            return result
        self._serving_stale(error)
        return stale.result

    # -- single-flight across replicas ------------------------------------------------------

    async def _take_lock(self, key: str) -> str | None:
        """A random value when this process now holds the lock for ``key`` (or should ask the
        Hub anyway: lock off, Redis down); ``None`` when another process holds it."""
        if not self._wait_for_replica or not self._usable():
            return ""
        mine = secrets.token_hex(16)
        milliseconds = max(1, int(self._wait_for_replica * 1000))
        taken = await self._call(
            "SET", self._redis.set, _lock_key(key), mine, nx=True, px=milliseconds
        )
        if taken is _FAILED or taken is _BAD_VALUE:
            return ""
        return mine if taken else None

    async def _release(self, key: str, mine: str) -> None:
        """Delete the lock if it is still ours (it may have expired and been taken since).

        GET then DEL, not a Lua script: scripting is off on some managed Redis. In the rare
        race (the lock expires between the two) another holder's waiters ask the Hub early.
        """
        held = await self._call("GET", self._redis.get, _lock_key(key))
        if held in (mine, mine.encode()):
            await self._call("DEL", self._redis.delete, _lock_key(key))

    async def _wait_for_answer(self, key: str) -> Result[UserInfo] | None:
        """The answer another process stores under ``key`` within ``wait_for_replica``
        seconds; ``None`` when it does not come (holder gone, answer not kept, Redis down)."""
        deadline = self._clock() + self._wait_for_replica
        pause = 0.005
        while True:
            await asyncio.sleep(min(pause, max(0.0, deadline - self._clock())))
            pause = min(pause * 2, 0.05)
            cached = await self._read(key)
            if isinstance(cached, Ok | Err):
                self._tally.add("waits")
                return cached
            if self._clock() >= deadline or not self._usable():
                return None
            held = await self._call("EXISTS", self._redis.exists, _lock_key(key))
            if held is _FAILED or not held:
                # Released: the answer is there now, or was not kept (an error).
                cached = await self._read(key)
                if isinstance(cached, Ok | Err):
                    self._tally.add("waits")
                    return cached
                return None

    # -- shared rate-limit backoff ----------------------------------------------------------

    def _backoff_key(self, endpoint: str) -> str:
        return self._prefix + "backoff:" + hashlib.sha256(endpoint.encode()).hexdigest()[:32]

    async def _backoff_remaining(self, endpoint: str) -> float:
        """Seconds left of a rate-limit backoff for ``endpoint`` (this process's or Redis's)."""
        local = self._rate_limit.remaining(endpoint)
        if local > 0 or not self._usable():
            return local
        stamp = await self._call("GET", self._redis.get, self._backoff_key(endpoint))
        try:
            remaining = min(float(stamp) - self._clock(), MAX_BACKOFF)
        except (TypeError, ValueError):  # no backoff (None), or not ours
            return 0.0
        if not remaining > 0:  # over, or NaN
            return 0.0
        self._rate_limit.extend(endpoint, remaining, counted=False)
        return remaining

    async def _share_backoff(self, endpoint: str, wait: float) -> None:
        """Tell every replica: the backoff's end as a stamp on the clock (Redis's ``PX``
        only evicts it)."""
        if self._usable():
            until = b"%.3f" % (self._clock() + wait)
            milliseconds = max(1, int(wait * 1000))
            await self._call(
                "SET", self._redis.set, self._backoff_key(endpoint), until, px=milliseconds
            )

    def _usable(self) -> bool:
        down_until = self._down_until
        return down_until is None or self._clock() >= down_until

    async def _call(self, name: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await method(*args, **kwargs)`` within ``timeout``; ``_FAILED`` when it fails."""
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    value = await method(*args, **kwargs)
                except Exception as exc:
                    if not _is_dropped_connection(exc):
                        raise
                    # A pooled connection Redis closed (a restart): the client reconnects on
                    # the next try, within the same timeout. Without this each dead
                    # connection cost `backoff` seconds.
                    value = await method(*args, **kwargs)
        # The cache must never fail a request: whatever the client raises (connection,
        # protocol, a misconfigured client), the answer comes from the Hub instead.
        except Exception as exc:
            if is_unreadable_value(exc):
                self._recovered()
                return _BAD_VALUE
            reason = "no answer in time" if isinstance(exc, TimeoutError) else _describe(exc)
            self._failed(name, reason)
            return _FAILED
        self._recovered()
        return value

    def _failed(self, operation: str, reason: str) -> None:
        self._tally.add("errors")
        with self._lock:
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
        self._tally.add("errors")
        with self._lock:
            first, self._warned_unreadable = not self._warned_unreadable, True
        log = logger.warning if first else logger.debug
        log(
            "redis cache: a value under prefix %r is not a valid hub_auth entry (another "
            "program's key, an older format, or tampered with); asking the Hub and replacing it",
            self._prefix,
        )


def _lock_key(key: str) -> str:
    # key is prefix + hex; the lock sits next to it, never equal to any value key.
    return key + ":lock"


def _is_dropped_connection(exc: Exception) -> bool:
    """Whether a redis-py call failed on its connection (one the server closed, say)."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # pragma: no cover - a client that is not redis-py
        return False
    return isinstance(exc, RedisConnectionError)


def is_unreadable_value(exc: Exception) -> bool:
    """Whether Redis answered, but about a value that is not a string we can read (the
    session store's rule too).

    ``WRONGTYPE`` has no class of its own in redis-py: it is a plain ``ResponseError``. Its
    subclasses (``READONLY``, ``OOM``, ``NOPERM``, ``MASTERDOWN``, and a cluster's
    ``CLUSTERDOWN`` and ``TRYAGAIN`` during a failover...) say Redis itself is in trouble, and
    are failures.
    """
    if isinstance(exc, UnicodeDecodeError):  # decode_responses=True and bytes that are not UTF-8
        return True
    try:
        from redis.exceptions import ResponseError
    except ImportError:  # pragma: no cover - a client that is not redis-py
        return False
    return type(exc) is ResponseError


def _describe(exc: BaseException) -> str:
    text = scrub(str(exc))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
