"""Resilience: retries, budgets, size and pool limits, and every fault FakeHub can inject.

Everything runs over real sockets: FakeHub in its thread, or a small aiohttp server in the
test's loop where a fault needs a server FakeHub does not model (endless bodies, a second
host, concurrency counting). Each case checks the outcome, the request count, the time taken
against the budget, and that no session or socket is left behind.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import gzip
import inspect
import json
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, Ok, Result, UserInfo
from hub_auth._http import MAX_BODY_BYTES, parse_retry_after
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("faults")
USER_BODY = json.dumps(FakeUser(name="ada-lovelace").body()).encode()
# Time a call may take beyond its budget: scheduling, thread hops, closing the connection.
SLACK = 0.35


# -- helpers -----------------------------------------------------------------------------------


def _client_sockets(port: int) -> int:
    """Open client sockets connected to ``port`` on this machine (from /proc/net/tcp{,6})."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            state, inode = fields[3], fields[9]
            # 01 ESTABLISHED, 02 SYN_SENT, 08 CLOSE_WAIT: an open socket; inode 0 = no owner.
            if remote_port == port and state in ("01", "02", "08") and inode != "0":
                count += 1
    return count


async def _assert_no_client_sockets(port: int) -> None:
    # Closing a transport takes a loop iteration or two; give it a moment, not more.
    for _ in range(50):
        if _client_sockets(port) == 0:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{_client_sockets(port)} client socket(s) to port {port} still open")


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Exempt what exists before this module from the collections below (50 ms -> 1 ms each)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _no_resource_warnings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail when a session, connector or socket of the test is garbage-collected unclosed."""
    yield
    if not inspect.iscoroutinefunction(request.function):
        return  # only the async tests open sessions
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
    return fake_hub


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalServer:
    """A tiny aiohttp server in the test's loop that records requests and their overlap."""

    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    host: str = "127.0.0.1"
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)
    url: str = ""
    port: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((peer[0], peer[1]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request)
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def local_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], host: str = "127.0.0.1"
) -> AsyncIterator[LocalServer]:
    server = LocalServer(handler, host)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = int(runner.addresses[0][1])
    server.url = f"http://{host}:{server.port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def _auth(endpoint: str, **options: Any) -> HubAuth:
    options.setdefault("max_attempts", 3)
    options.setdefault("retry_budget", 5.0)
    options.setdefault("timeout", 5.0)
    return HubAuth(endpoint=endpoint, token=TOKEN, read_env=False, **options)


async def _timed_whoami(
    auth: HubAuth, *, owns_session: bool = True
) -> tuple[Result[UserInfo], float]:
    async with auth:
        started = time.monotonic()
        result = await auth.whoami()
        elapsed = time.monotonic() - started
    if owns_session:
        assert not auth._client.session_open
    return result, elapsed


def _kind(result: Result[UserInfo]) -> ErrorKind | None:
    return None if isinstance(result, Ok) else result.error.kind


def _error(result: Result[UserInfo]) -> HubAuthError:
    assert isinstance(result, Err), result
    return result.error


# -- the fault table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One misbehaviour, what it should give, how many requests, and the time allowed."""

    inject: Callable[[FakeHub], None]
    expect: ErrorKind | None  # None: Ok after retries
    requests: int | range
    within: float
    options: dict[str, Any] = field(default_factory=dict)


def _html(hub: FakeHub) -> None:
    hub.malformed_next(body="<html><body>Bad gateway</body></html>", content_type="text/html")


FAULTS: dict[str, Fault] = {
    # 429: told how long (beyond the budget: at once), not told (backoff), told 0 s.
    "429-retry-after-beyond-budget": Fault(
        lambda h: h.rate_limit_next(retry_after=30), ErrorKind.RATE_LIMITED, 1, 0.3
    ),
    "429-ratelimit-t-beyond-budget": Fault(
        lambda h: h.rate_limit_next(retry_after=None, reset=120), ErrorKind.RATE_LIMITED, 1, 0.3
    ),
    "429-no-headers-then-ok": Fault(
        lambda h: h.rate_limit_next(retry_after=None, send_ratelimit_header=False), None, 2, 1.0
    ),
    "429-no-headers-always": Fault(
        lambda h: h.rate_limit_next(9, retry_after=None, send_ratelimit_header=False),
        ErrorKind.RATE_LIMITED,
        2,
        1.0,
        {"max_attempts": 2},
    ),
    "429-retry-after-0-then-ok": Fault(lambda h: h.rate_limit_next(retry_after=0), None, 2, 0.3),
    # 5xx: 500 is final, the gateway errors are retried.
    "500": Fault(lambda h: h.fail_next(500), ErrorKind.SERVER_ERROR, 1, 0.3),
    "502-then-ok": Fault(lambda h: h.fail_next(502), None, 2, 1.0),
    "503-then-ok": Fault(lambda h: h.fail_next(503), None, 2, 1.0),
    "504-then-ok": Fault(lambda h: h.fail_next(504), None, 2, 1.0),
    "503-always": Fault(
        lambda h: h.fail_next(503, 9), ErrorKind.SERVER_ERROR, 2, 1.0, {"max_attempts": 2}
    ),
    # Never retried.
    "400": Fault(lambda h: h.fail_next(400), ErrorKind.BAD_RESPONSE, 1, 0.3),
    "401": Fault(lambda h: h.revoke(TOKEN), ErrorKind.UNAUTHORIZED, 1, 0.3),
    "403": Fault(lambda h: h.forbid(TOKEN), ErrorKind.FORBIDDEN, 1, 0.3),
    "404": Fault(lambda h: h.fail_next(404), ErrorKind.NOT_FOUND, 1, 0.3),
    # The connection closes without an answer.
    # aiohttp itself resends an idempotent GET once after a disconnect: up to 2 per attempt.
    "reset-then-ok": Fault(lambda h: h.drop_next(1), None, 2, 1.0),
    "reset-always": Fault(
        lambda h: h.drop_next(20), ErrorKind.NETWORK, range(2, 5), 1.0, {"max_attempts": 2}
    ),
    # Too slow: the timeout ends it, and a timeout is not retried.
    "slow-beyond-timeout": Fault(
        lambda h: h.delay_next(10), ErrorKind.TIMEOUT, 1, 0.3 + 0.3, {"timeout": 0.3}
    ),
    # Answers that are not a user.
    "malformed-json": Fault(lambda h: h.malformed_next(), ErrorKind.BAD_RESPONSE, 1, 0.3),
    "html-200": Fault(_html, ErrorKind.BAD_RESPONSE, 1, 0.3),
    "empty-200": Fault(lambda h: h.malformed_next(body=b""), ErrorKind.BAD_RESPONSE, 1, 0.3),
    "wrong-shape-list": Fault(
        lambda h: h.malformed_next(body=b"[1, 2]"), ErrorKind.BAD_RESPONSE, 1, 0.3
    ),
    "wrong-shape-no-name": Fault(
        lambda h: h.malformed_next(body=b'{"user": {"name": "ada"}}'),
        ErrorKind.BAD_RESPONSE,
        1,
        0.3,
    ),
    "wrong-shape-types": Fault(
        lambda h: h.malformed_next(body=b'{"name": "ada", "orgs": "none"}'),
        ErrorKind.BAD_RESPONSE,
        1,
        0.3,
    ),
    "too-large-content-length": Fault(
        lambda h: h.fail_next(200, body=b" " * (MAX_BODY_BYTES + 1)), ErrorKind.BAD_RESPONSE, 1, 0.5
    ),
    "redirect-loop": Fault(
        lambda h: h.redirect_next("/api/whoami-v2", count=9), ErrorKind.BAD_RESPONSE, 4, 0.5
    ),
    "redirect-unparsable": Fault(
        lambda h: h.redirect_next("http://[::1"), ErrorKind.BAD_RESPONSE, 1, 0.3
    ),
    "redirect-port-out-of-range": Fault(
        lambda h: h.redirect_next("http://127.0.0.1:99999/"), ErrorKind.BAD_RESPONSE, 1, 0.3
    ),
    "redirect-with-credentials": Fault(
        lambda h: h.redirect_next(f"http://user:pw@127.0.0.1:{h.port}/api/whoami-v2"),
        ErrorKind.BAD_RESPONSE,
        1,
        0.3,
    ),
    "redirect-same-host-then-ok": Fault(
        lambda h: h.redirect_next("/api/whoami-v2?via=redirect"), None, 2, 0.5
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault(name: str, hub: FakeHub) -> None:
    fault = FAULTS[name]
    fault.inject(hub)
    result, elapsed = await _timed_whoami(_auth(hub.url, **fault.options))
    assert _kind(result) is fault.expect, result
    if fault.expect is None:
        assert result.unwrap().username == "ada-lovelace"
    expected = fault.requests if isinstance(fault.requests, range) else [fault.requests]
    assert hub.request_count in expected
    assert elapsed < fault.within + SLACK, f"took {elapsed:.2f}s"
    await _assert_no_client_sockets(hub.port)


async def test_rate_limited_error_carries_retry_after(hub: FakeHub) -> None:
    hub.rate_limit_next(retry_after=30, reset=120)
    result, elapsed = await _timed_whoami(_auth(hub.url, retry_budget=5.0))
    error = _error(result)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 30  # Retry-After wins over RateLimit's t=
    assert error.request_id
    assert elapsed < 0.3


async def test_retry_after_seconds_is_honoured(hub: FakeHub) -> None:
    hub.rate_limit_next(retry_after=0.4)
    result, elapsed = await _timed_whoami(_auth(hub.url))
    assert isinstance(result, Ok)
    assert hub.request_count == 2
    assert 0.39 <= elapsed < 0.4 + SLACK


async def test_retry_after_http_date_is_honoured(hub: FakeHub) -> None:
    # An HTTP date has whole seconds: wait for the next one (at most a second away).
    target = int(time.time()) + 1
    started = time.monotonic()
    hub.fail_next(429, headers={"Retry-After": email.utils.formatdate(target, usegmt=True)})
    result, _ = await _timed_whoami(_auth(hub.url))
    elapsed = time.monotonic() - started
    assert isinstance(result, Ok)
    assert hub.request_count == 2
    assert time.time() >= target - 0.05
    assert elapsed < 1.0 + SLACK


async def test_retry_after_http_date_beyond_budget(hub: FakeHub) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    hub.fail_next(429, headers={"Retry-After": when})
    result, elapsed = await _timed_whoami(_auth(hub.url, retry_budget=5.0))
    error = _error(result)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after is not None
    assert 117 < error.retry_after <= 120
    assert hub.request_count == 1
    assert elapsed < 0.3


async def test_ratelimit_reset_is_honoured(hub: FakeHub) -> None:
    hub.fail_next(429, headers={"RateLimit": '"api";r=0;t=0.4'})
    result, elapsed = await _timed_whoami(_auth(hub.url))
    assert isinstance(result, Ok)
    assert hub.request_count == 2
    assert 0.39 <= elapsed < 0.4 + SLACK


async def test_503_retry_after_is_honoured(hub: FakeHub) -> None:
    hub.fail_next(503, headers={"Retry-After": "0.3"})
    result, elapsed = await _timed_whoami(_auth(hub.url))
    assert isinstance(result, Ok)
    assert 0.29 <= elapsed < 0.3 + SLACK


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": " 1.5 "}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "Wed, 21 Oct 99999 07:28:00 GMT"}, None),
        ({"RateLimit": '"api";r=0;t=42'}, 42.0),
        ({"RateLimit": '"api";r=0'}, None),
        ({"Retry-After": "bogus", "RateLimit": '"api";r=0;t=7'}, 7.0),
        ({"Retry-After": "5", "RateLimit": '"api";r=0;t=7'}, 5.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


# -- budget and attempts -----------------------------------------------------------------------


async def test_budget_bounds_many_attempts(hub: FakeHub) -> None:
    hub.fail_next(503, 1000)
    budget = 0.6
    result, elapsed = await _timed_whoami(_auth(hub.url, max_attempts=100, retry_budget=budget))
    error = _error(result)
    assert error.kind is ErrorKind.SERVER_ERROR
    assert 2 <= hub.request_count < 10
    assert elapsed < budget + SLACK


async def test_one_attempt_means_no_retry(hub: FakeHub) -> None:
    hub.fail_next(503)
    result, elapsed = await _timed_whoami(_auth(hub.url, max_attempts=1))
    error = _error(result)
    assert error.kind is ErrorKind.SERVER_ERROR
    assert hub.request_count == 1
    assert elapsed < 0.3


async def test_budget_cuts_a_slow_first_request(hub: FakeHub) -> None:
    hub.delay_next(10)
    result, elapsed = await _timed_whoami(_auth(hub.url, timeout=30.0, retry_budget=0.5))
    error = _error(result)
    assert error.kind is ErrorKind.TIMEOUT
    assert "budget" in error.message
    assert elapsed < 0.5 + SLACK


async def test_budget_cuts_a_slow_retry(hub: FakeHub) -> None:
    hub.fail_next(503)
    hub.delay_next(10)
    result, elapsed = await _timed_whoami(_auth(hub.url, timeout=30.0, retry_budget=0.8))
    error = _error(result)
    assert error.kind is ErrorKind.TIMEOUT
    assert hub.request_count == 2
    assert elapsed < 0.8 + SLACK


async def test_a_retry_after_that_leaves_no_time_gives_up(hub: FakeHub) -> None:
    hub.rate_limit_next(retry_after=0.6, send_ratelimit_header=False)
    result, elapsed = await _timed_whoami(_auth(hub.url, retry_budget=0.5))
    error = _error(result)
    assert error.retry_after == 0.6
    assert hub.request_count == 1
    assert elapsed < 0.3


# -- network failures --------------------------------------------------------------------------


async def test_refused_port() -> None:
    port = _free_port()
    result, elapsed = await _timed_whoami(_auth(f"http://127.0.0.1:{port}", max_attempts=2))
    assert _kind(result) is ErrorKind.NETWORK
    assert elapsed < 1.0 + SLACK
    await _assert_no_client_sockets(port)


async def test_dns_failure_stays_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # .invalid never resolves (RFC 6761), but a resolver would still ask the network: answer
    # for it here, so the lookup fails the way a real NXDOMAIN does without leaving the host.
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    result, elapsed = await _timed_whoami(_auth("http://nonexistent.invalid", max_attempts=2))
    assert _kind(result) is ErrorKind.NETWORK
    error = _error(result)
    assert "nonexistent.invalid" in error.message
    assert set(asked) == {"nonexistent.invalid"}
    assert elapsed < 1.0 + SLACK


# -- redirects ---------------------------------------------------------------------------------


async def test_redirect_to_another_host_never_gets_the_token(hub: FakeHub) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=USER_BODY, content_type="application/json")

    # 'localhost' and '127.0.0.1' are the same machine but not the same host for a browser,
    # nor for hub_auth: the token must not follow.
    async with local_server(answer, host="localhost") as other:
        for status in (301, 302, 303, 307, 308):
            hub.redirect_next(f"{other.url}/api/whoami-v2", status=status)
            result, elapsed = await _timed_whoami(_auth(hub.url))
            assert _kind(result) is ErrorKind.BAD_RESPONSE, status
            error = _error(result)
            assert "another host" in error.message
            assert error.status == status
            assert elapsed < 0.5
        assert other.headers == []
    assert hub.request_count == 5


async def test_redirect_to_another_port_or_scheme_is_refused(hub: FakeHub) -> None:
    for location in (
        f"http://127.0.0.1:{_free_port()}/api/whoami-v2",
        f"https://127.0.0.1:{hub.port}/api/whoami-v2",
    ):
        hub.redirect_next(location)
        result, _ = await _timed_whoami(_auth(hub.url))
        assert _kind(result) is ErrorKind.BAD_RESPONSE, location


async def test_redirect_on_the_same_host_keeps_the_token(hub: FakeHub) -> None:
    hub.redirect_next(f"{hub.url}/api/whoami-v2", status=307)
    result, _ = await _timed_whoami(_auth(hub.url))
    assert isinstance(result, Ok)
    assert [r.token for r in hub.requests] == [TOKEN, TOKEN]


# -- body size ---------------------------------------------------------------------------------


async def test_endless_chunked_body_is_cut_at_the_limit() -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * 65536
        until = time.monotonic() + 5
        while time.monotonic() < until:
            await response.write(chunk)
            sent += len(chunk)
        return response

    async with local_server(endless) as server:
        result, elapsed = await _timed_whoami(_auth(server.url, timeout=10.0))
    assert _kind(result) is ErrorKind.BAD_RESPONSE
    error = _error(result)
    assert "larger than" in error.message
    assert elapsed < 1.0
    assert sent < 64 * MAX_BODY_BYTES


async def test_compressed_bomb_is_cut_at_the_limit() -> None:
    bomb = gzip.compress(b" " * (64 * MAX_BODY_BYTES), compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES // 4

    async def answer(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    async with local_server(answer) as server:
        result, elapsed = await _timed_whoami(_auth(server.url))
    assert _kind(result) is ErrorKind.BAD_RESPONSE
    assert elapsed < 1.0


async def test_body_just_under_the_limit_is_read() -> None:
    padded = USER_BODY[:-1] + b', "pad": "' + b"x" * (MAX_BODY_BYTES - len(USER_BODY) - 20) + b'"}'
    assert len(padded) <= MAX_BODY_BYTES

    async def answer(request: web.Request) -> web.StreamResponse:
        # Chunked, so that only the bounded reader can tell the size.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(padded), 10000):
            await response.write(padded[start : start + 10000])
        await response.write_eof()
        return response

    async with local_server(answer) as server:
        result, _ = await _timed_whoami(_auth(server.url))
    assert isinstance(result, Ok)
    assert result.value.username == "ada-lovelace"


# -- pool --------------------------------------------------------------------------------------


async def test_pool_limit_bounds_open_connections() -> None:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response(body=USER_BODY, content_type="application/json")

    async with local_server(answer) as server:
        async with _auth(server.url, pool_limit=10) as auth:
            results = await asyncio.gather(*(auth.whoami() for _ in range(200)))
        assert all(isinstance(r, Ok) for r in results)
        assert len(server.headers) == 200
        # Saturated, but never above the limit: at most 10 requests and 10 sockets at once.
        assert server.max_in_flight == 10
        assert len(server.peers) <= 10
        await _assert_no_client_sockets(server.port)


async def test_borrowed_session_gets_hub_auth_timeout(hub: FakeHub) -> None:
    hub.delay_next(10)
    # The session's own timeout is long; HubAuth's must apply to its requests all the same.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        auth = _auth(hub.url, session=session, timeout=0.3)
        result, elapsed = await _timed_whoami(auth, owns_session=False)
        assert not session.closed
    assert _kind(result) is ErrorKind.TIMEOUT
    assert elapsed < 0.3 + SLACK
