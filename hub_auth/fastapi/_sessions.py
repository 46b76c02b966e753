"""Server-side session stores for ``HubOAuth``: in memory (one process) or in Redis (replicas).

A store maps a key to a JSON string for a limited time. ``HubOAuth`` never gives it the
session id the browser holds: the key is the SHA-256 of that id, so whoever reads the store
(a Redis dump) cannot turn a key back into a usable cookie.

The values hold the user's access and refresh tokens and profile, so both stores seal them::

    hs1:<base64url of a 12-byte random nonce + AES-256-GCM ciphertext and tag>

AES-GCM (``cryptography``'s AEAD) under a key derived with HKDF-SHA256 from the store's
``secret``; the associated data is the format's version and the key the value is stored
under, so a value copied to another session's key does not open. Whoever reads Redis learns
nothing but sizes; whoever writes it without the secret cannot choose an identity: a value
that does not open (a flipped bit, a forged or moved value, garbage, a value written before
sealing or under another secret) is treated as absent (the user signs in again), and the
first one a store meets is logged as a warning (later ones at debug), never with the value.

Without ``secret=``, a ``MemorySessionStore`` seals under a random key of its own (its
sessions die with the process anyway); a ``RedisSessionStore`` derives its key from
``OAUTH_CLIENT_SECRET`` (set on a Space with ``hf_oauth: true``, and the same on every
replica) with an HKDF label of its own, and without either refuses to start.

Sign-ins in progress (keys starting with ``PENDING_LOGIN_PREFIX``, written by anonymous visits
to the login route) are bounded apart from sessions, in count and in bytes, in both stores: a
flood of them evicts the oldest of them, never a signed-in user's session.

``RedisSessionStore`` works on one Redis and on a Redis Cluster (``redis.asyncio.RedisCluster``)
alike. Its keys, under ``prefix``::

    <prefix><sha256 of a session id>          a session          (one key per command)
    <prefix>lock:<key>                        a session's lock   (one key per command)
    <prefix>{pending}login:<...>              a sign-in in progress ┐ one script updates
    <prefix>{pending}expiry|sizes|bytes       their bounds' index   ┘ them together

The pending keys share the hash tag ``{pending}`` so that the script that keeps the bounds
(it writes one and may evict others) finds them all in one slot of a cluster; every other
command names a single key, so sessions spread over the cluster's masters.

A store of your own (the ``SessionStore`` protocol) receives the values unsealed: sealing is
the store's job, as it is for the two stores here.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub_auth._cache.policy import check_secret
from hub_auth._cache.redis import is_unreadable_value

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["MemorySessionStore", "RedisSessionStore", "SessionStore"]

logger = logging.getLogger("hub_auth")


PENDING_LOGIN_PREFIX = "login:"
"""Keys of sign-ins in progress start with this (session keys are hex digests)."""

PENDING_HASH_TAG = "{pending}"
"""In Redis, sign-ins in progress and their index sit under ``prefix`` + this hash tag: one
cluster slot, so the script that bounds them may touch them all."""

MAX_PENDING_LOGINS = 10_000
MAX_PENDING_BYTES = 8 << 20
"""Default bounds of the sign-ins in progress a store keeps (normal ones take ~0.5 KB each)."""

_VERSION = "hs1:"
_SECRET_LABEL = b"hub_auth session store v1 (secret)"
_CLIENT_SECRET_LABEL = b"hub_auth session store v1 (OAUTH_CLIENT_SECRET)"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_SEALED_CHARS = 1 << 20  # a session is a few KB; anything larger is not ours


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


def _sealing_key(secret: bytes | str | None, *, shared: bool) -> bytes:
    """The AEAD key of a store: from ``secret``; else, for a store shared by processes
    (``shared``), from ``OAUTH_CLIENT_SECRET``; else random (one process, one life)."""
    if secret is not None:
        return _derive(check_secret(secret, "secret"), _SECRET_LABEL)
    if not shared:
        return os.urandom(32)
    client_secret = os.environ.get("OAUTH_CLIENT_SECRET")
    if client_secret:
        what = "OAUTH_CLIENT_SECRET (the session key when no secret= is given)"
        return _derive(check_secret(client_secret, what), _CLIENT_SECRET_LABEL)
    raise ValueError(
        "RedisSessionStore needs secret=...: the key that seals the sessions, the same on every "
        "replica that shares the Redis (at least 32 random bytes, e.g. from "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))', kept like a password); "
        "on a Space with hf_oauth: true it defaults to one derived from OAUTH_CLIENT_SECRET"
    )


class _Sealer:
    """Seals a store's values (AES-256-GCM, random nonce, the store key as associated data)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._warned = False

    @staticmethod
    def _associated(key: str) -> bytes:
        return f"{_VERSION}{key}".encode()

    def seal(self, key: str, value: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), self._associated(key))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, key: str, sealed: str | bytes) -> str | None:
        """The value sealed in ``sealed`` for ``key``, or ``None`` (logged) when it does not
        open: anything but a value this store sealed for this very key."""
        value = self._open(key, sealed)
        if value is None:
            self.refuse()
        return value

    def _open(self, key: str, sealed: str | bytes) -> str | None:
        try:
            if isinstance(sealed, bytes):
                sealed = sealed.decode("ascii")
            if not sealed.startswith(_VERSION) or len(sealed) > _MAX_SEALED_CHARS:
                return None
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            if len(raw) < _NONCE_BYTES + _TAG_BYTES:
                return None
            nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, ciphertext, self._associated(key)).decode()
        except (ValueError, InvalidTag):  # bad ASCII, base64 or UTF-8 (ValueErrors), forged
            return None

    def refuse(self) -> None:
        """Note a stored value that is not ours (the first at warning level, then debug)."""
        first, self._warned = not self._warned, True
        (logger.warning if first else logger.debug)(
            "Sign in with Hugging Face: a session store value failed its integrity check "
            "(tampered with, moved from another key, written under another secret or before "
            "sessions were sealed); treated as absent, so that user signs in again"
        )


@runtime_checkable
class SessionStore(Protocol):
    """Where ``HubOAuth`` keeps sessions; every method may be called from many requests.

    Values are JSON holding the user's access and refresh tokens and profile. Sealing them is
    the store's job: ``MemorySessionStore`` and ``RedisSessionStore`` encrypt and authenticate
    every value; a store of your own that keeps values outside the process should too (whoever
    can write a value there can otherwise choose who is signed in).

    A store may also define ``async def replace(self, key, value, ttl) -> bool``: store
    ``value`` only if ``key`` still holds one, atomically, and say whether it did. ``HubOAuth``
    saves a refreshed session with it, so a logout during a refresh is not undone; without it,
    ``HubOAuth`` loads then saves under ``lock`` (``save_if_present``).
    """

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
        """Held while one process refreshes ``key``'s tokens or ends its session, so replicas
        that share the store do not refresh one session twice (the provider rotates refresh
        tokens: the second refresh would be refused and end the session). ``HubOAuth`` already
        serialises these within one process; a store used by one process may return a no-op.
        Give up waiting after ``seconds`` and proceed."""
        ...


@runtime_checkable
class _Replaces(Protocol):
    async def replace(self, key: str, value: str, ttl: float) -> bool: ...


async def save_if_present(store: SessionStore, key: str, value: str, ttl: float) -> bool:
    """Save ``value`` under ``key`` only if a value is still there (a refreshed session whose
    user may have signed out meanwhile); ``False`` when it was not."""
    if isinstance(store, _Replaces):
        return await store.replace(key, value, ttl)
    # A store without ``replace``: the caller holds the session's lock, as logout does.
    if await store.load(key) is None:
        return False
    await store.save(key, value, ttl)
    return True


def _check_bound(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return value


class MemorySessionStore:
    """Sessions in this process's memory: lost on restart, not shared between replicas.

    At most ``max_sessions`` are kept; beyond that the least recently saved one is dropped
    (its user signs in again), so a flood of sign-in attempts cannot exhaust memory. Sign-ins
    in progress (keys starting with ``PENDING_LOGIN_PREFIX``, saved by anonymous visits to the
    login route) have bounds of their own, ``max_pending_logins`` and ``max_pending_bytes``
    (bytes of sealed values; the oldest go first), so such a flood can never push signed-in
    users out.

    Values are sealed (AES-GCM) under a key derived from ``secret``, or, without one, under a
    random key of this process's own.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 100_000,
        max_pending_logins: int = MAX_PENDING_LOGINS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        secret: bytes | str | None = None,
    ) -> None:
        self._max = _check_bound(max_sessions, "max_sessions")
        self._max_pending = _check_bound(max_pending_logins, "max_pending_logins")
        self._max_pending_bytes = _check_bound(max_pending_bytes, "max_pending_bytes")
        self._sealer = _Sealer(_sealing_key(secret, shared=False))
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending_bytes = 0

    def __len__(self) -> int:
        with self._lock:
            now = time.monotonic()
            return sum(1 for _, deadline in self._entries.values() if deadline > now)

    def _table(self, key: str) -> OrderedDict[str, tuple[str, float]]:
        return self._pending if key.startswith(PENDING_LOGIN_PREFIX) else self._entries

    def _pop(self, key: str) -> None:
        """Forget ``key`` (the caller holds the lock)."""
        entry = self._table(key).pop(key, None)
        if entry is not None and key.startswith(PENDING_LOGIN_PREFIX):
            self._pending_bytes -= len(entry[0])

    def _put(self, key: str, sealed: str, ttl: float) -> None:
        """Store ``sealed`` as the newest entry of its table and trim that table (the caller
        holds the lock)."""
        self._pop(key)
        table = self._table(key)
        table[key] = (sealed, time.monotonic() + ttl)
        if table is self._entries:
            while len(table) > self._max:
                table.popitem(last=False)
            return
        self._pending_bytes += len(sealed)
        while len(table) > self._max_pending or self._pending_bytes > self._max_pending_bytes:
            self._pop(next(iter(table)))

    async def load(self, key: str) -> str | None:
        with self._lock:
            entry = self._table(key).get(key)
            if entry is None:
                return None
            sealed, deadline = entry
            if deadline <= time.monotonic():
                self._pop(key)
                return None
        return self._sealer.open(key, sealed)

    async def save(self, key: str, value: str, ttl: float) -> None:
        sealed = self._sealer.seal(key, value)
        with self._lock:
            self._put(key, sealed, ttl)

    async def replace(self, key: str, value: str, ttl: float) -> bool:
        """Save ``value`` only if ``key`` holds a live value (checked under the lock)."""
        sealed = self._sealer.seal(key, value)
        with self._lock:
            entry = self._table(key).get(key)
            if entry is None or entry[1] <= time.monotonic():
                return False
            self._put(key, sealed, ttl)
            return True

    async def delete(self, key: str) -> None:
        with self._lock:
            self._pop(key)

    def lock(self, key: str, seconds: float) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # one process: HubOAuth's own lock is enough


# Sign-ins in progress in Redis: each value has its own PX expiry, and an index keeps the
# bounds: a sorted set (key -> expiry, ms), a hash (key -> bytes) and the total of the bytes.
# The scripts run atomically, so concurrent sign-ins on several replicas keep the bounds. They
# touch keys they were not given (the oldest sign-ins they evict): on a cluster every one of
# them shares the {pending} hash tag, hence one slot.
_FORGET_PENDING = """
local function forget(member)
  local size = redis.call('HGET', KEYS[3], member)
  if size then
    redis.call('HDEL', KEYS[3], member)
    redis.call('DECRBY', KEYS[4], size)
  end
  redis.call('ZREM', KEYS[2], member)
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('DEL', KEYS[3], KEYS[4])  -- nothing pending: no bookkeeping left behind
  end
end
"""
_SAVE_PENDING = (
    _FORGET_PENDING
    + """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[2])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  forget(member)
end
forget(KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], #ARGV[1])
local total = redis.call('INCRBY', KEYS[4], #ARGV[1])
local evicted = 0
while total > tonumber(ARGV[4]) or redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[3]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then break end
  forget(oldest)
  redis.call('DEL', oldest)
  total = tonumber(redis.call('GET', KEYS[4]) or '0')
  evicted = evicted + 1
end
for index = 2, 4 do
  if redis.call('PTTL', KEYS[index]) < ttl then redis.call('PEXPIRE', KEYS[index], ttl) end
end
return evicted
"""
)
_DELETE_PENDING = (
    _FORGET_PENDING
    + """
forget(KEYS[1])
return redis.call('DEL', KEYS[1])
"""
)


class RedisSessionStore:
    """Sessions in Redis, shared by every replica of the app (extra ``hub_auth[redis]``).

    ::

        store = RedisSessionStore(
            redis.asyncio.Redis.from_url("redis://sessions:6379/0"),
            # The same on every replica; make one with secrets.token_urlsafe(32).
            secret=os.environ["HUB_AUTH_SESSION_SECRET"],
        )
        oauth = HubOAuth(session_store=store)

    ``redis`` is a ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client, the same
    kind ``RedisCache`` takes; it is the caller's and is never closed here. Values are sealed
    (AES-GCM, see the module) and written with ``SET key value PX ms``, so Redis itself
    expires them. On a cluster, sessions spread over the masters and the sign-ins in progress
    share one slot (the ``{pending}`` hash tag; see the module for the keys).

    Args:
        redis: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client
            (``decode_responses`` may be on or off).
        prefix: Prefix of every key (a hash tag in it, like ``{app}:session:``, puts every
            key of the store in one cluster slot).
        secret: The key the replicas seal sessions with: at least 32 bytes, not a repeated
            pattern, the same on every replica. Default: one derived from
            ``OAUTH_CLIENT_SECRET`` (a Space with ``hf_oauth: true``); without either, a
            ``ValueError``. Changing it signs everyone out.
        max_pending_logins: Sign-ins in progress kept at most (the oldest go first).
        max_pending_bytes: Bytes (of sealed values) of sign-ins in progress kept at most (the
            oldest go first).
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        prefix: str = "hub_auth:session:",
        secret: bytes | str | None = None,
        max_pending_logins: int = MAX_PENDING_LOGINS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._sealer = _Sealer(_sealing_key(secret, shared=True))
        self._max_pending = _check_bound(max_pending_logins, "max_pending_logins")
        self._max_pending_bytes = _check_bound(max_pending_bytes, "max_pending_bytes")
        self._redis = redis
        self._prefix = prefix
        pending = prefix + PENDING_HASH_TAG
        self._pending_index = [pending + "expiry", pending + "sizes", pending + "bytes"]
        self._save_pending = redis.register_script(_SAVE_PENDING)
        self._delete_pending = redis.register_script(_DELETE_PENDING)

    @staticmethod
    def _px(ttl: float) -> int:
        return max(1, math.ceil(ttl * 1000))

    def _name(self, key: str) -> str:
        """The Redis key of ``key``: sign-ins in progress under the ``{pending}`` hash tag."""
        if key.startswith(PENDING_LOGIN_PREFIX):
            return self._prefix + PENDING_HASH_TAG + key
        return self._prefix + key

    async def load(self, key: str) -> str | None:
        name = self._name(key)
        try:
            value = await self._redis.get(name)
        except Exception as exc:
            if not is_unreadable_value(exc):
                raise  # Redis in trouble (down, failing over, read-only): not a signed-out user
            self._sealer.refuse()  # WRONGTYPE, or bytes that are not UTF-8: not a value of ours
            return None
        if value is None:
            return None
        return self._sealer.open(name, value)

    async def save(self, key: str, value: str, ttl: float) -> None:
        name = self._name(key)
        sealed = self._sealer.seal(name, value)
        if key.startswith(PENDING_LOGIN_PREFIX):
            await self._save_pending(
                keys=[name, *self._pending_index],
                args=[sealed, self._px(ttl), self._max_pending, self._max_pending_bytes],
            )
        else:
            await self._redis.set(name, sealed, px=self._px(ttl))

    async def replace(self, key: str, value: str, ttl: float) -> bool:
        """Save ``value`` only if ``key`` holds a value (``SET ... XX``, atomic)."""
        name = self._name(key)
        sealed = self._sealer.seal(name, value)
        return bool(await self._redis.set(name, sealed, px=self._px(ttl), xx=True))

    async def delete(self, key: str) -> None:
        name = self._name(key)
        if key.startswith(PENDING_LOGIN_PREFIX):
            await self._delete_pending(keys=[name, *self._pending_index])
        else:
            await self._redis.delete(name)

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
                "Sign in with Hugging Face: session lock not acquired; going on without it"
            )
        try:
            yield
        finally:
            if acquired:
                await lock.release()
