"""OpenTelemetry traces and metrics: every span, metric and attribute name of hub_auth, once.

hub_auth depends on ``opentelemetry-api`` only (the ``hub_auth[otel]`` extra), and only when
the application set one up: the SDK, its exporters and its sampling are the application's. The
names (``docs/observability.md`` lists them in one table):

- spans ``hub_auth.whoami`` (attributes ``hub_auth.cache``: hit / miss / stale / wait / none,
  ``hub_auth.error.kind``, ``server.address``) and ``hub_auth.hub.request`` (one per request
  to the Hub or an OpenID provider, the HTTP attributes of the semantic conventions and the
  Hub's ``X-Request-Id``); one span per flow: the device login, the stored-token refresh, the
  OIDC exchange, ``HubOAuth``'s sign-in and session refresh;
- metrics ``hub_auth.whoami.calls`` (counter: ``outcome`` = ``ok`` or the ``ErrorKind``,
  ``cache``, ``server.address``), ``hub_auth.hub.request.duration`` (histogram, seconds:
  ``status``), ``hub_auth.cache.entries`` (observable gauge) and ``hub_auth.backoff.active``
  (observable gauge: seconds left of the Hub's rate-limit backoff, 0 when none).

Never a token, a token hash, a code or a secret: attributes are kinds, statuses, hosts, paths
(scrubbed) and the Hub's request id.

The gate. Without an SDK the OpenTelemetry API is a no-op, but a no-op span still costs about
1 µs, a third of a cached whoami. So every call site first reads ``on``, a module flag that is
true only while a real tracer or meter provider is set (one attribute read, below the noise of
a cache hit). ``refresh()`` sets it from the API's global providers: it never imports
OpenTelemetry (when nothing imported ``opentelemetry.trace`` or ``.metrics``, no provider can
have been set), and a provider defined in the API package itself (its proxy and no-op
providers) does not count. It runs when a ``HubAuth`` is made and before every Hub request, so a
provider set after the client was made is seen from the next Hub request on (the first whoami
of a process is one: its cache is empty).

Tests (and applications that keep providers out of the API's set-once globals) call
``use_providers(tracer_provider, meter_provider)``, which wins over the globals until its undo
function is called.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import scrub

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "BACKOFF_ACTIVE",
    "CACHE_ENTRIES",
    "HUB_REQUEST",
    "HUB_REQUEST_DURATION",
    "WHOAMI",
    "WHOAMI_CALLS",
    "flow",
    "hub_request",
    "record_whoami",
    "refresh",
    "traced_whoami",
    "use_providers",
    "watch",
]

T = TypeVar("T")


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...


R = TypeVar("R", bound=_Response)

# -- names: the one home of every span, metric and attribute name ------------------------------

SCOPE: Final = "hub_auth"
"""The instrumentation scope (tracer and meter name)."""

WHOAMI: Final = "hub_auth.whoami"
HUB_REQUEST: Final = "hub_auth.hub.request"
DEVICE_LOGIN_START: Final = "hub_auth.device_login.start"
DEVICE_LOGIN_POLL: Final = "hub_auth.device_login.poll"
TOKEN_REFRESH: Final = "hub_auth.token.refresh"
OIDC_EXCHANGE: Final = "hub_auth.oidc.exchange"
SIGN_IN: Final = "hub_auth.oauth.sign_in"
SESSION_REFRESH: Final = "hub_auth.oauth.session_refresh"

WHOAMI_CALLS: Final = "hub_auth.whoami.calls"
HUB_REQUEST_DURATION: Final = "hub_auth.hub.request.duration"
CACHE_ENTRIES: Final = "hub_auth.cache.entries"
BACKOFF_ACTIVE: Final = "hub_auth.backoff.active"

# Span attributes (the HTTP ones from OpenTelemetry's semantic conventions).
CACHE_ATTR: Final = "hub_auth.cache"
ERROR_KIND_ATTR: Final = "hub_auth.error.kind"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_METHOD: Final = "http.request.method"
HTTP_STATUS: Final = "http.response.status_code"
URL_PATH: Final = "url.path"
REQUEST_ID: Final = "http.response.header.x-request-id"
ERROR_TYPE: Final = "error.type"
# Metric attributes.
OUTCOME: Final = "outcome"
CACHE: Final = "cache"
STATUS: Final = "status"
CACHE_KIND: Final = "cache.kind"

CacheOutcome = Literal["hit", "miss", "stale", "wait", "none"]
"""How the cache answered a whoami: from an entry (hit), by asking the Hub (miss), with an
entry past its ttl because the Hub could not answer (stale), by waiting for another call's
request about the same token (wait); none without a cache."""

# Seconds; OpenTelemetry's advice for HTTP client durations.
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)

# -- the gate ------------------------------------------------------------------------------------

on: bool = False
"""True while a real tracer or meter provider is set: read by every call site first."""


class _Instruments:
    """The tracer and the instruments made from one pair of providers."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from opentelemetry import trace

        from hub_auth import __version__

        self.tracer: Tracer = (
            tracer_provider.get_tracer(SCOPE, __version__)
            if tracer_provider is not None
            else trace.NoOpTracer()
        )
        # Metrics without traces: a whoami skips even a no-op span (about 4 µs).
        self.tracing = tracer_provider is not None
        self.span_kind = trace.SpanKind
        self.error_status = trace.Status(trace.StatusCode.ERROR)
        self.use_span = trace.use_span
        self.whoami_calls: Any = None
        self.request_duration: Any = None
        if meter_provider is None:
            return
        meter = meter_provider.get_meter(SCOPE, __version__)
        self.whoami_calls = meter.create_counter(
            WHOAMI_CALLS, unit="{call}", description="whoami calls, by outcome and cache answer"
        )
        self.request_duration = meter.create_histogram(
            HUB_REQUEST_DURATION,
            unit="s",
            description="Duration of requests to the Hub (and OpenID providers)",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        meter.create_observable_gauge(
            CACHE_ENTRIES,
            callbacks=[_observe_entries],
            unit="{entry}",
            description="Entries held by whoami caches (caches that know their size)",
        )
        meter.create_observable_gauge(
            BACKOFF_ACTIVE,
            callbacks=[_observe_backoff],
            unit="s",
            description="Seconds left of the Hub's rate-limit backoff (0: none)",
        )


_instruments: _Instruments | None = None
_from_globals: tuple[object, object] = (None, None)
_injected = False


def _is_real(provider: object) -> bool:
    # The API's own providers (proxy, no-op) live in its package; an SDK's elsewhere.
    return provider is not None and not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


def refresh() -> None:
    """Set ``on`` from the API's global providers (see the module docstring)."""
    global on, _instruments, _from_globals
    if _injected:
        return
    trace_api = sys.modules.get("opentelemetry.trace")
    metrics_api = sys.modules.get("opentelemetry.metrics")
    if trace_api is None and metrics_api is None:
        return
    tracer_provider = trace_api.get_tracer_provider() if trace_api is not None else None
    meter_provider = metrics_api.get_meter_provider() if metrics_api is not None else None
    seen = _from_globals
    if tracer_provider is seen[0] and meter_provider is seen[1]:
        return
    _from_globals = (tracer_provider, meter_provider)
    real_tracer, real_meter = _is_real(tracer_provider), _is_real(meter_provider)
    if real_tracer or real_meter:
        _instruments = _Instruments(
            tracer_provider if real_tracer else None,
            meter_provider if real_meter else None,
        )
        on = True
    else:
        _instruments, on = None, False


def use_providers(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> Callable[[], None]:
    """Record to these providers (not the API's globals) until the returned undo is called.

    The API lets an application set its global providers once per process; tests set up an
    SDK provider per test with this instead.
    """
    global on, _instruments, _injected
    before = (on, _instruments, _injected)
    _instruments = _Instruments(tracer_provider, meter_provider)
    on, _injected = True, True

    def undo() -> None:
        global on, _instruments, _injected
        on, _instruments, _injected = before

    return undo


# -- what the gauges observe -------------------------------------------------------------------

_watched_caches: weakref.WeakKeyDictionary[object, None] = weakref.WeakKeyDictionary()
_watched_clients: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()
_watch_lock = threading.Lock()


def watch(client: Any, endpoint: str, cache: object | None) -> None:
    """Observe ``client`` (its ``backoff_remaining()``, under its ``endpoint``'s host and port)
    and ``cache`` (its ``stats().entries``) for the gauges, while they live. Called once per
    ``HubAuth``."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with _watch_lock:
        _watched_clients[client] = (parts.hostname or "", port)
        if cache is not None:
            # A cache that cannot be weakly referenced is not observed.
            with contextlib.suppress(TypeError):
                _watched_caches[cache] = None
    refresh()


def _observe_entries(options: CallbackOptions) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    with _watch_lock:
        caches = list(_watched_caches)
    entries_by_kind: dict[str, int] = {}
    for cache in caches:
        stats = getattr(cache, "stats", None)
        entries = stats().entries if callable(stats) else None
        if isinstance(entries, int):
            kind = type(cache).__name__
            entries_by_kind[kind] = entries_by_kind.get(kind, 0) + entries
    for kind, entries in entries_by_kind.items():
        yield Observation(entries, {CACHE_KIND: kind})


def _observe_backoff(options: CallbackOptions) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    with _watch_lock:
        clients = list(_watched_clients.items())
    longest: dict[tuple[str, int], float] = {}
    for client, server in clients:
        longest[server] = max(longest.get(server, 0.0), client.backoff_remaining())
    for (address, port), seconds in longest.items():
        yield Observation(seconds, {SERVER_ADDRESS: address, SERVER_PORT: port})


# -- whoami --------------------------------------------------------------------------------------


class _TokenGroup:
    """The whoami calls about one token running at once, and whether one asked the Hub."""

    __slots__ = ("calls", "loaded")

    def __init__(self) -> None:
        self.calls = 0
        self.loaded = False


class _WhoamiCall:
    """What one whoami call saw: requests made in its context (its own cache load), and the
    last one's failure."""

    __slots__ = ("failed", "group", "requests")

    def __init__(self, group: _TokenGroup | None) -> None:
        self.group = group
        self.requests = 0
        self.failed = False

    def cache_outcome(self, result: Result[Any]) -> CacheOutcome:
        if self.requests:
            return "stale" if self.failed and isinstance(result, Ok) else "miss"
        if self.group is not None and self.group.loaded:
            return "wait"
        if isinstance(result, Err) and result.error.kind is ErrorKind.RATE_LIMITED:
            return "miss"  # a miss answered without a request, during a backoff
        return "hit"


_CURRENT_WHOAMI: ContextVar[_WhoamiCall | None] = ContextVar("hub_auth_whoami", default=None)
_groups: dict[int, _TokenGroup] = {}
_groups_lock = threading.Lock()


def in_whoami() -> bool:
    """Whether this runs inside a traced whoami (its inner, plain call)."""
    return _CURRENT_WHOAMI.get() is not None


def _outcome(result: Result[Any]) -> str:
    return "ok" if isinstance(result, Ok) else result.error.kind.value


def record_whoami(server: str, result: Result[Any], cache: CacheOutcome) -> None:
    """A whoami answered without a coroutine (a cache hit served synchronously): its span,
    started and ended at once, and its count. Call only while ``on``."""
    instruments = _instruments
    if instruments is None:
        return
    span = instruments.tracer.start_span(
        WHOAMI,
        kind=instruments.span_kind.INTERNAL,
        attributes={SERVER_ADDRESS: server, CACHE_ATTR: cache},
    )
    if isinstance(result, Err):
        _failed(span, result.error, instruments)
    span.end()
    _count(instruments, server, result, cache)


def _count(
    instruments: _Instruments, server: str, result: Result[Any], cache: CacheOutcome
) -> None:
    if instruments.whoami_calls is not None:
        attributes = {OUTCOME: _outcome(result), CACHE: cache, SERVER_ADDRESS: server}
        instruments.whoami_calls.add(1, attributes)


async def traced_whoami(
    whoami: Callable[[], Coroutine[Any, Any, Result[T]]],
    *,
    server: str,
    token: str | None,
    cached: bool,
) -> Result[T]:
    """``await whoami()`` in a ``hub_auth.whoami`` span, counted in ``hub_auth.whoami.calls``.

    ``token`` (when the caller gave one) only groups concurrent calls about the same token,
    by its ``hash()`` in this process, to tell a wait for another call's request from a hit.
    """
    instruments = _instruments
    if instruments is None:  # providers removed since the caller looked
        return await whoami()
    key = hash(token) if cached and token is not None else None
    group = None
    if key is not None:
        with _groups_lock:
            group = _groups.get(key)
            if group is None:
                group = _groups[key] = _TokenGroup()
            group.calls += 1
    call = _WhoamiCall(group)
    reset = _CURRENT_WHOAMI.set(call)
    span_of_call = (
        instruments.tracer.start_as_current_span(
            WHOAMI, kind=instruments.span_kind.INTERNAL, attributes={SERVER_ADDRESS: server}
        )
        if instruments.tracing
        else _NOTHING
    )
    try:
        with span_of_call as span:
            result = await whoami()
            cache: CacheOutcome = call.cache_outcome(result) if cached else "none"
            span.set_attribute(CACHE_ATTR, cache)
            if isinstance(result, Err):
                _failed(span, result.error, instruments)
    finally:
        _CURRENT_WHOAMI.reset(reset)
        if key is not None and group is not None:
            with _groups_lock:
                group.calls -= 1
                if group.calls <= 0 and _groups.get(key) is group:
                    del _groups[key]
    _count(instruments, server, result, cache)
    return result


def _failed(span: Span | Nothing, error: HubAuthError, instruments: _Instruments) -> None:
    span.set_attribute(ERROR_KIND_ATTR, error.kind.value)
    span.set_status(instruments.error_status)


# -- requests --------------------------------------------------------------------------------------


class HubRequest:
    """One request to the Hub: a ``hub_auth.hub.request`` span and its duration (``with``)."""

    __slots__ = (
        "_instruments",
        "_method",
        "_server",
        "_span",
        "_started",
        "_status",
        "_url",
        "_whoami",
    )

    def __init__(self, instruments: _Instruments, method: str, url: object, whoami: bool) -> None:
        self._instruments = instruments
        self._whoami = whoami
        self._method = method
        self._url = url
        self._span: Span | None = None
        self._started = 0.0
        self._status = "error"
        self._server = ""

    def __enter__(self) -> HubRequest:
        from yarl import URL

        url = self._url if isinstance(self._url, URL) else URL(str(self._url))
        self._server = url.host or ""
        attributes: dict[str, str | int] = {
            HTTP_METHOD: self._method,
            SERVER_ADDRESS: self._server,
            URL_PATH: scrub(url.path),
        }
        if url.port is not None:
            attributes[SERVER_PORT] = url.port
        span = self._instruments.tracer.start_span(
            HUB_REQUEST, kind=self._instruments.span_kind.CLIENT, attributes=attributes
        )
        self._span = span
        self._started = time.perf_counter()
        return self

    def answered(self, status: int | None, request_id: str | None, kind: ErrorKind | None) -> None:
        """The Hub answered ``status`` (``None``: no answer, ``kind`` says why)."""
        span = self._span
        if span is None:
            return
        if status is not None:
            span.set_attribute(HTTP_STATUS, status)
            self._status = str(status)
            if status >= 400:  # a client span's error, as the HTTP conventions say
                span.set_attribute(ERROR_TYPE, self._status)
                span.set_status(self._instruments.error_status)
        else:
            self._status = kind.value if kind is not None else "error"
            span.set_attribute(ERROR_TYPE, self._status)
            span.set_status(self._instruments.error_status)
        if kind is not None:
            span.set_attribute(ERROR_KIND_ATTR, kind.value)
        if request_id:
            span.set_attribute(REQUEST_ID, (scrub(request_id)[:100],))
        call = _CURRENT_WHOAMI.get() if self._whoami else None
        if call is not None:
            call.requests += 1
            call.failed = status is None or status != 200
            if call.group is not None:
                call.group.loaded = True

    def __exit__(self, *exc_info: object) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        duration = time.perf_counter() - self._started
        histogram = self._instruments.request_duration
        if histogram is not None:
            histogram.record(duration, {STATUS: self._status, SERVER_ADDRESS: self._server})
        span.end()


class Nothing:
    """What ``hub_request`` and ``flow`` return while telemetry is off (and a whoami's span
    while only metrics are recorded)."""

    __slots__ = ()

    def __enter__(self) -> Nothing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def answered(self, status: int | None, request_id: str | None, kind: ErrorKind | None) -> None:
        return None

    def result(self, result: T) -> T:
        return result

    def responded(self, response: R) -> R:
        return response

    def failed(self, kind: ErrorKind) -> None:
        return None

    def set_attribute(self, key: str, value: object) -> None:
        return None

    def set_status(self, status: object) -> None:
        return None


_NOTHING: Final = Nothing()


def hub_request(method: str, url: object, *, whoami: bool = False) -> HubRequest | Nothing:
    """``with hub_request(method, url) as request: ... request.answered(...)``; ``whoami``: the
    request is a whoami's (a cache's load), which the whoami span around it tells apart from a
    token refresh or OIDC exchange made while resolving its token."""
    if not on:
        refresh()  # before every Hub request: a provider may have been set since
    instruments = _instruments
    if instruments is None:
        return _NOTHING
    return HubRequest(instruments, method, url, whoami)


class Flow:
    """A span around one flow (device login, refresh, OIDC exchange, sign-in)."""

    __slots__ = ("_instruments", "_name", "_span", "_token")

    def __init__(self, instruments: _Instruments, name: str) -> None:
        self._instruments = instruments
        self._name = name
        self._span: Span | None = None
        self._token: Any = None

    def __enter__(self) -> Flow:
        instruments = self._instruments
        span = instruments.tracer.start_span(self._name, kind=instruments.span_kind.INTERNAL)
        self._span = span
        # The flow's requests are its children.
        # Exceptions are not recorded: their messages are not ours to vouch for.
        self._token = instruments.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=True
        )
        self._token.__enter__()
        return self

    def result(self, result: T) -> T:
        """``result``, after noting its error kind when it is an ``Err``."""
        if isinstance(result, Err) and isinstance(result.error, HubAuthError):
            self.failed(result.error.kind)
        return result

    def responded(self, response: R) -> R:
        """``response`` (an HTTP response this flow ends with), after noting its status."""
        span = self._span
        if span is not None:
            status = response.status_code
            span.set_attribute(HTTP_STATUS, status)
            if status >= 400:
                span.set_attribute(ERROR_TYPE, str(status))
                span.set_status(self._instruments.error_status)
        return response

    def failed(self, kind: ErrorKind) -> None:
        span = self._span
        if span is not None:
            span.set_attribute(ERROR_KIND_ATTR, kind.value)
            span.set_status(self._instruments.error_status)

    def __exit__(self, *exc_info: Any) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        self._token.__exit__(*exc_info)
        span.end()


def flow(name: str) -> Flow | Nothing:
    """``with flow(DEVICE_LOGIN_POLL) as span: return span.result(...)``."""
    if not on:
        refresh()
    instruments = _instruments
    if instruments is None:
        return _NOTHING
    return Flow(instruments, name)
