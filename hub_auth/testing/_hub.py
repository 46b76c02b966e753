"""FakeHub: the server, its whoami endpoint, its token table and its fault queue.

The top of the emulator's library modules: it imports the users, the shared answers and the
OAuth side, and none of them imports it (they see the hub through ``TokenTable``).
"""

# No ``from __future__ import annotations``: the dataclasses' annotations are evaluated here,
# so typing.get_type_hints() still works once __init__ sets their __module__ to hub_auth.testing.

import asyncio
import json
import math
import random
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from hub_auth._tokens import mask_token
from hub_auth.testing._oauth import FakeOAuth
from hub_auth.testing._pages import JSON_TYPE, error_json, reason
from hub_auth.testing._users import FakeUser, make_token

__all__ = [
    "FORBIDDEN_MESSAGE",
    "INVALID_CREDENTIALS_MESSAGE",
    "NOMINAL_WINDOW",
    "RATE_LIMITED_MESSAGE",
    "WHOAMI_PATH",
    "FakeHub",
    "RecordedRequest",
]

WHOAMI_PATH = "/api/whoami-v2"
"""The path FakeHub (and the Hub) answers whoami on."""
INVALID_CREDENTIALS_MESSAGE = "Invalid credentials in Authorization header"
"""The Hub's error message for an unknown or revoked token (401), as FakeHub sends it."""
FORBIDDEN_MESSAGE = "Your organization requires fine-grained tokens"
"""FakeHub's default message for a token refused with ``forbid`` (403)."""
RATE_LIMITED_MESSAGE = "Too many requests to /api/whoami-v2, please retry later"
"""FakeHub's message for a rate-limited request (429)."""

# The Hub's documented policy for whoami: a fixed five-minute window per IP.
_NOMINAL_QUOTA = 1000
NOMINAL_WINDOW = 300.0
"""Seconds of the Hub's rate-limit window (FakeHub's default, and the shell command's)."""


@dataclass(frozen=True, eq=False, repr=False)
class RecordedRequest:
    """One request FakeHub received, as it arrived (the repr masks the token)."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    peer: str | None
    request_id: str
    """The ``X-Request-Id`` FakeHub answered with."""
    client_port: int | None = None
    """The client's TCP port: requests with the same one came over one kept-alive connection."""

    @property
    def token(self) -> str | None:
        """The bearer token sent, if the Authorization header carried one."""
        return _bearer_token(self.headers.get("Authorization"))

    def __repr__(self) -> str:
        token = self.token
        shown = mask_token(token) if token is not None else None
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, "
            f"peer={self.peer!r}, token={shown!r}, request_id={self.request_id!r})"
        )


def _client_port(request: web.BaseRequest) -> int | None:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    return int(peername[1]) if isinstance(peername, tuple) and len(peername) >= 2 else None


def _bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _encode(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def _request_id() -> str:
    # Shaped like the Hub's (an AWS trace id): time in hex, then random hex.
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _check_count(count: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")


def _check_status(status: int) -> None:
    if not 100 <= status <= 599:
        raise ValueError(f"not an HTTP status: {status}")


@dataclass(frozen=True)
class _Fault:
    """One queued misbehaviour; ``respond`` replaces the answer, ``delay`` precedes it."""

    kind: Literal["respond", "delay", "drop"]
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0


@dataclass
class _Account:
    user: FakeUser
    body: bytes
    state: Literal["active", "revoked", "forbidden"] = "active"
    forbidden_message: str = FORBIDDEN_MESSAGE
    expires_at: float | None = None
    """Unix time after which whoami answers 401 (OAuth tokens); ``None``: never."""


@dataclass
class _Window:
    started: float
    used: int = 0


_INVALID_BODY = error_json(INVALID_CREDENTIALS_MESSAGE)
_RATE_LIMITED_BODY = error_json(RATE_LIMITED_MESSAGE)
_NOT_FOUND_BODY = error_json("Not found")


class FakeHub:
    """A local emulator of the Hub's ``GET /api/whoami-v2``, with fault injection.

    ``tokens`` pre-registers tokens. ``rate_limit=N`` enforces the Hub's per-IP fixed window:
    after N whoami requests from one peer within ``rate_limit_window`` seconds, answer 429.
    Without it the ``RateLimit`` headers advertise the Hub's nominal policy and never run out.
    ``request_count``, the fault queue, the failure rate and the rate limit concern whoami
    requests only; ``requests`` records every request (the last ``record_limit``).
    ``ssl_context`` (a server context holding the certificate and its key) serves https: ``url``
    then starts with ``https://``, and clients must trust the certificate's issuer.

    Start it with ``async with`` / :meth:`start` in the current loop, or with ``with`` /
    :meth:`start_in_thread` in a thread of its own.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, FakeUser] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int | None = None,
        rate_limit_window: float = NOMINAL_WINDOW,
        record_limit: int = 1000,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if rate_limit is not None and rate_limit < 1:
            raise ValueError(f"rate_limit must be >= 1 or None, not {rate_limit}")
        if rate_limit_window <= 0:
            raise ValueError(f"rate_limit_window must be > 0, not {rate_limit_window}")
        self._host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._rate_limit = rate_limit
        self._window_seconds = rate_limit_window
        self._quota = rate_limit if rate_limit is not None else _NOMINAL_QUOTA
        self._policy = f'"fixed window";"api";q={self._quota};w={math.ceil(rate_limit_window)}'

        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._faults: deque[list[Any]] = deque()  # [fault, remaining count]
        self._failure_status = 500
        self._failure_rate = 0.0
        self._rng = random.Random()  # noqa: S311 - load-test sampling, not security
        self._default_delay = 0.0
        self._request_count = 0
        self._records: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._windows: dict[str, _Window] = {}
        self._epoch = time.monotonic()
        self._user_serial = 0

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.oauth = FakeOAuth(self)
        """The OAuth/OIDC endpoints and their controls (device login, refresh, exchange)."""

        for token, user in (tokens or {}).items():
            self.add_token(token, user)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<FakeHub {where} tokens={len(self._accounts)}>"

    # -- configuration ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https`` with ``ssl_context``) of the running server.

        Raises before it is started.
        """
        if self._port is None:
            raise RuntimeError("FakeHub is not started: use 'async with', start() or 'with'")
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The port the server listens on (raises before it is started)."""
        if self._port is None:
            raise RuntimeError("FakeHub is not started: use 'async with', start() or 'with'")
        return self._port

    @property
    def tokens(self) -> dict[str, FakeUser]:
        """A copy of the token table, revoked and forbidden tokens included."""
        with self._lock:
            return {token: account.user for token, account in self._accounts.items()}

    def add_token(
        self,
        token: str | None = None,
        user: FakeUser | None = None,
        *,
        expires_at: float | None = None,
        **user_fields: Any,
    ) -> str:
        """Register ``token`` (random if omitted) for ``user`` and return the token.

        Without ``user``, a :class:`FakeUser` is built from ``user_fields`` (``name`` defaults
        to ``user1``, ``user2``, ...). Registering a token again replaces its user and
        clears a revocation. The body is serialised now: re-add after mutating the user.
        ``expires_at`` (unix seconds) makes whoami answer 401 from then on.
        """
        if user is not None and user_fields:
            raise TypeError("pass either a FakeUser or FakeUser fields, not both")
        if token is None:
            token = make_token()
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__} (user= is keyword)")
        if not token or any(ch.isspace() for ch in token):
            raise ValueError("a token must be non-empty and contain no whitespace")
        with self._lock:
            if user is None:
                if "name" not in user_fields:
                    self._user_serial += 1
                    user_fields["name"] = f"user{self._user_serial}"
                user = FakeUser(**user_fields)
            self._accounts[token] = _Account(
                user, json.dumps(user.body()).encode(), expires_at=expires_at
            )
        return token

    def revoke(self, token: str) -> None:
        """Answer 401 to later requests with ``token``, as for a deleted token."""
        with self._lock:
            self._account(token).state = "revoked"

    def forbid(self, token: str, *, message: str = FORBIDDEN_MESSAGE) -> None:
        """Answer 403 with ``message`` to later requests with ``token`` (an org policy)."""
        with self._lock:
            account = self._account(token)
            account.state = "forbidden"
            account.forbidden_message = message

    def _unexpired_user(self, token: str) -> FakeUser | None:
        # TokenTable: the OpenID userinfo endpoint accepts any token of the table until it expires.
        with self._lock:
            account = self._accounts.get(token)
        if account is None:
            return None
        expired = account.expires_at is not None and account.expires_at <= time.time()
        return None if expired else account.user

    def _account(self, token: str) -> _Account:
        try:
            return self._accounts[token]
        except KeyError:
            raise KeyError(f"unknown token {mask_token(token)}") from None

    @property
    def default_delay(self) -> float:
        """Seconds every whoami request waits before it is answered (0 by default)."""
        return self._default_delay

    @default_delay.setter
    def default_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"default_delay must be >= 0, not {seconds}")
        self._default_delay = float(seconds)

    # -- counters -----------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Whoami requests received, whatever their outcome (faults included)."""
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[RecordedRequest]:
        """The last requests received on any path, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def reset_counts(self) -> None:
        """Zero ``request_count``, forget recorded requests and open new rate-limit windows."""
        with self._lock:
            self._request_count = 0
            self._records.clear()
            self._windows.clear()

    # -- fault injection ----------------------------------------------------------------

    @property
    def pending_faults(self) -> int:
        """How many whoami requests the queued faults will still affect."""
        with self._lock:
            return sum(remaining for _, remaining in self._faults)

    def clear_faults(self) -> None:
        """Drop every queued fault and turn the failure rate off."""
        with self._lock:
            self._faults.clear()
            self._failure_rate = 0.0

    def _enqueue(self, fault: _Fault, count: int) -> None:
        _check_count(count)
        if count:
            with self._lock:
                self._faults.append([fault, count])

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``count`` whoami requests with ``status``.

        The default body is ``{"error": <reason phrase>}``, repeated in ``X-Error-Message``.
        """
        _check_status(status)
        extra = dict(headers or {})
        if body is None:
            message = reason(status)
            payload = error_json(message)
            extra.setdefault("X-Error-Message", message)
        else:
            payload = _encode(body)
        extra.setdefault("Content-Type", content_type)
        self._enqueue(_Fault("respond", status, tuple(extra.items()), payload), count)

    def rate_limit_next(
        self,
        count: int = 1,
        *,
        retry_after: float | None = 30,
        reset: int = 120,
        remaining: int = 0,
        send_ratelimit_header: bool = True,
    ) -> None:
        """Answer the next ``count`` whoami requests with 429 Too Many Requests.

        ``retry_after`` goes to ``Retry-After`` (omitted when ``None``); ``reset`` and
        ``remaining`` to ``RateLimit: "api";r=<remaining>;t=<reset>``, sent with
        ``RateLimit-Policy`` unless ``send_ratelimit_header`` is false.
        """
        headers: dict[str, str] = {
            "Content-Type": JSON_TYPE,
            "X-Error-Message": RATE_LIMITED_MESSAGE,
        }
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if send_ratelimit_header:
            headers["RateLimit"] = f'"api";r={remaining};t={reset}'
            headers["RateLimit-Policy"] = self._policy
        fault = _Fault("respond", 429, tuple(headers.items()), _RATE_LIMITED_BODY)
        self._enqueue(fault, count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` whoami requests ``seconds`` before answering normally."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds}")
        self._enqueue(_Fault("delay", seconds=seconds), count)

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` whoami requests without answering.

        aiohttp's client retries an idempotent request once after such a disconnect, so
        ``drop_next(2)`` is what makes one aiohttp ``GET`` fail.
        """
        self._enqueue(_Fault("drop"), count)

    def malformed_next(
        self,
        count: int = 1,
        *,
        body: str | bytes = b"{not json",
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``count`` whoami requests with ``body`` (by default broken JSON)."""
        _check_status(status)
        headers = (("Content-Type", content_type),)
        self._enqueue(_Fault("respond", status, headers, _encode(body)), count)

    def redirect_next(self, location: str, count: int = 1, status: int = 302) -> None:
        """Redirect the next ``count`` whoami requests to ``location``."""
        if not 300 <= status <= 399:
            raise ValueError(f"not a redirect status: {status}")
        headers = (("Location", location), ("Content-Type", JSON_TYPE))
        self._enqueue(_Fault("respond", status, headers, b""), count)

    def set_failure_rate(self, status: int, rate: float, *, seed: int | None = None) -> None:
        """Answer a random ``rate`` of whoami requests with ``status``; 0 turns it off.

        Queued faults take precedence. ``seed`` makes the sequence reproducible.
        """
        _check_status(status)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        with self._lock:
            self._failure_status = status
            self._failure_rate = rate
            self._rng = random.Random(seed)  # noqa: S311 - load-test sampling, not security

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeHub is already started")
        app = web.Application()
        app.router.add_get(WHOAMI_PATH, self._whoami)
        self.oauth.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a client that gives up on a delayed request frees it at once.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self._host, self._requested_port, ssl_context=self._ssl_context
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._closing = asyncio.Event()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving; requests held by a delay are dropped. Safe to call twice."""
        runner = self._runner
        if runner is None:
            return
        if self._thread is not None and threading.current_thread() is not self._thread:
            raise RuntimeError("this FakeHub runs in a thread: stop it with stop_thread()")
        if self._closing is not None:
            self._closing.set()
        self._runner = None
        await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_in_thread(self) -> Self:
        """Start serving in a new daemon thread with its own event loop; return self."""
        if self._runner is not None or self._thread is not None:
            raise RuntimeError("FakeHub is already started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(self.start())
                except BaseException as exc:
                    failure.append(exc)
                    return
                finally:
                    started.set()
                loop.run_forever()
                loop.run_until_complete(self.close())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        thread = threading.Thread(target=serve, name=f"FakeHub-{id(self):x}", daemon=True)
        self._thread = thread
        self._thread_loop = loop
        thread.start()
        started.wait()
        if failure:
            thread.join()
            self._thread = self._thread_loop = None
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop the server started by :meth:`start_in_thread` and join its thread."""
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._thread_loop = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # -- request handling ---------------------------------------------------------------

    def _record(self, request: web.Request, request_id: str) -> None:
        # Called with the lock held.
        self._records.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query_string=request.query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                peer=request.remote,
                request_id=request_id,
                client_port=_client_port(request),
            )
        )

    def _next_fault(self) -> _Fault | None:
        # Called with the lock held.
        if self._faults:
            entry = self._faults[0]
            entry[1] -= 1
            if entry[1] == 0:
                self._faults.popleft()
            fault: _Fault = entry[0]
            return fault
        if self._failure_rate and self._rng.random() < self._failure_rate:
            message = reason(self._failure_status)
            headers = (("Content-Type", JSON_TYPE), ("X-Error-Message", message))
            return _Fault("respond", self._failure_status, headers, error_json(message))
        return None

    def _use_window(self, peer: str, now: float) -> tuple[int, int, bool]:
        """Count one request from ``peer``: (remaining, seconds to reset, over the limit)."""
        # Called with the lock held.
        if self._rate_limit is None:
            elapsed = (now - self._epoch) % self._window_seconds
            return self._quota - 1, math.ceil(self._window_seconds - elapsed), False
        window = self._windows.get(peer)
        if window is None or now - window.started >= self._window_seconds:
            window = self._windows[peer] = _Window(now)
        window.used += 1
        reset = max(math.ceil(window.started + self._window_seconds - now), 0)
        return max(self._rate_limit - window.used, 0), reset, window.used > self._rate_limit

    async def _hold(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when the hub closes meanwhile."""
        if self._closing is None:
            return True
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _whoami(self, request: web.Request) -> web.StreamResponse:
        request_id = _request_id()
        peer = request.remote or "unknown"
        with self._lock:
            self._request_count += 1
            self._record(request, request_id)
            fault = self._next_fault()
            remaining, reset, limited = self._use_window(peer, time.monotonic())
        delay = self._default_delay
        if fault is not None and fault.kind == "delay":
            delay += fault.seconds
        if delay > 0 and not await self._hold(delay):
            return _drop(request)
        if fault is not None and fault.kind == "drop":
            return _drop(request)
        if fault is not None and fault.kind == "respond":
            headers = CIMultiDict(fault.headers)
            headers["X-Request-Id"] = request_id
            return web.Response(status=fault.status, body=fault.body, headers=headers)

        headers = CIMultiDict(
            {
                "Content-Type": JSON_TYPE,
                "X-Request-Id": request_id,
                "RateLimit": f'"api";r={remaining};t={reset}',
                "RateLimit-Policy": self._policy,
            }
        )
        if limited:
            headers["Retry-After"] = str(reset)
            headers["X-Error-Message"] = RATE_LIMITED_MESSAGE
            return web.Response(status=429, body=_RATE_LIMITED_BODY, headers=headers)

        token = _bearer_token(request.headers.get("Authorization"))
        with self._lock:
            account = self._accounts.get(token) if token is not None else None
            state = account.state if account is not None else "revoked"
            if account is not None and account.expires_at is not None:
                state = "revoked" if time.time() >= account.expires_at else state
            forbidden_message = account.forbidden_message if account is not None else ""
        if account is None or state == "revoked":
            headers["X-Error-Message"] = INVALID_CREDENTIALS_MESSAGE
            return web.Response(status=401, body=_INVALID_BODY, headers=headers)
        if state == "forbidden":
            headers["X-Error-Message"] = forbidden_message
            return web.Response(status=403, body=error_json(forbidden_message), headers=headers)
        return web.Response(status=200, body=account.body, headers=headers)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        request_id = _request_id()
        with self._lock:
            self._record(request, request_id)
        headers = {"Content-Type": JSON_TYPE, "X-Request-Id": request_id}
        return web.Response(status=404, body=_NOT_FOUND_BODY, headers=headers)


def _drop(request: web.Request) -> web.StreamResponse:
    # Aborting the transport makes aiohttp skip writing the response: the client sees the
    # connection close with no status line at all.
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)
