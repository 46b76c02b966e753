"""HubClient: the aiohttp session, the one request path, whoami's retries and error mapping.

This is the one boundary where aiohttp and asyncio exceptions become ``HubAuthError``:
nothing above it sees a foreign exception, nothing below it builds an ``Err``. Every request
goes through ``HubClient._request`` (timeout, same-origin redirects, the bounded body read,
errors named by cause, secrets masked): whoami (with the retries below), the device login and
the refresh (``post_oauth_form``), the OIDC exchange and ``HubOAuth``'s calls to the OpenID
provider (``request``).

Retries apply to the idempotent ``GET /api/whoami-v2`` on 429, 502, 503, 504 and connection
errors, with exponential backoff and jitter, honouring ``Retry-After`` and the ``RateLimit``
header's ``t=``; bounded by ``max_attempts`` and a total ``retry_budget``. When the Hub asks for
a longer wait than the budget allows, the 429 comes back at once with ``retry_after`` set. The
budget covers everything: each request's timeout is cut to what is left of it, and a backoff
that would not fit ends the call at once with the last error. The loop is a plain ``while`` in
``HubClient.whoami`` (attempts, a backoff generator, a deadline), not a retry library: such a
library's instrumentation is process-wide, and its default printed a line on stderr for every
retry of every call. Each retry is logged on the ``hub_auth`` logger at DEBUG (attempt, wait,
cause; never the token), so nothing is printed unless the application configures logging.

Network failures are named by cause, in plain words, with the endpoint's origin
(``scheme://host:port``, never a path, query or user): "connection refused", "name not
resolved", "TLS certificate not trusted", "timed out after 10 s". A certificate the client does
not trust is not retried (it will not become trusted in a second); refused connections, DNS
failures and dropped connections are.

While the Hub rate-limits this client, it is not asked again: once a 429 says when to come back
(``Retry-After``, or ``RateLimit``'s ``t=``), every ``whoami`` until then returns
``Err(rate_limited)`` at once, with ``retry_after`` set to what is left of the wait, without a
request. whoami's limit is per IP, so one more request would only be another 429; a flood of
unknown tokens must not keep the service's quota exhausted. The wait is capped at
``MAX_RATE_LIMIT_WAIT`` (the Hub's window is five minutes), so a wrong header cannot shut the
service out for long. A 429 that does not say when is not remembered. Caches are consulted
before HubClient, so tokens they know keep working.

Each request is one ``hub_auth.hub.request`` span when an OpenTelemetry SDK is set up
(``_telemetry.hub_request`` around ``_request``, at its two callers), and what it got from the
Hub is kept as ``last_heard`` for ``HubAuth.health``.

Bodies are read through a bounded loop (never ``response.read()``), so neither a huge
``Content-Length``, an endless chunked stream nor a compressed bomb is read beyond 1 MiB.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple, TypedDict, Unpack

import aiohttp
from pydantic import ValidationError
from yarl import URL

from hub_auth import __version__, _telemetry
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._logging import LOGGER_NAME
from hub_auth._models import UserInfo
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import endpoint_origin
from hub_auth._tokens import MaskedStr, scrub

if TYPE_CHECKING:
    from hub_auth._settings import Settings

__all__ = ["HubClient", "RawAnswer", "RetryPolicy", "parse_retry_after", "parse_whoami"]

# Importing hub_auth._logging (above) installed the token-masking filter on this logger.
logger = logging.getLogger(LOGGER_NAME)

WHOAMI_PATH: Final = "/api/whoami-v2"
MAX_BODY_BYTES: Final = 1 << 20
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_RATELIMIT_RESET = re.compile(r"(?:^|;)\s*t\s*=\s*(\d+(?:\.\d+)?)")
_RATELIMIT_EXHAUSTED = re.compile(r"(?:^|;)\s*r\s*=\s*0\s*(?:;|$)")
_MAX_REDIRECTS: Final = 3
MAX_RATE_LIMIT_WAIT: Final = 300.0
"""The longest a 429 keeps this client from asking the Hub (its rate-limit window)."""
# Sessions a forked child inherited from its parent (HubClient.forget_session_after_fork).
_LEFT_TO_THE_PARENT: list[aiohttp.ClientSession] = []
# The package's own __version__, not importlib.metadata: a lookup in every installed
# distribution's metadata at import, for a string.
_USER_AGENT = f"hub_auth/{__version__}; aiohttp/{aiohttp.__version__}"


class RequestParts(TypedDict, total=False):
    """What a request carries besides its method and URL (``HubClient.request``)."""

    headers: Mapping[str, str]
    params: Mapping[str, str]
    """Appended to the query string the URL may already have."""
    form: Mapping[str, str]
    """A form-encoded body."""
    json_body: Mapping[str, object]
    """A JSON body."""


class RawAnswer(NamedTuple):
    """A response left for the caller to interpret (``HubClient.request``)."""

    status: int
    body: bytes
    request_id: str | None
    headers: Mapping[str, str] = MappingProxyType({})


class Heard(NamedTuple):
    """What the last request to the Hub got: when (``time.monotonic()``), its status (``None``:
    no answer) and the error kind, if it failed."""

    at: float
    status: int | None
    kind: ErrorKind | None

    @property
    def reachable(self) -> bool:
        """The Hub answered, and not with a 5xx."""
        return self.status is not None and self.status < 500


class RetryPolicy:
    """How hard to try: at most ``max_attempts`` requests within ``budget`` seconds in all."""

    __slots__ = ("budget", "max_attempts", "wait_initial", "wait_jitter", "wait_max")

    def __init__(
        self,
        max_attempts: int = 3,
        budget: float = 20.0,
        *,
        wait_initial: float = 0.2,
        wait_max: float = 5.0,
        wait_jitter: float = 0.2,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
            raise ValueError(f"retry budget must be a positive number of seconds, got {budget!r}")
        self.max_attempts = max_attempts
        self.budget = float(budget)
        self.wait_initial = wait_initial
        self.wait_max = wait_max
        # A little jitter, so clients that failed together do not all come back together.
        self.wait_jitter = wait_jitter

    def backoff(self) -> Iterator[float]:
        """The waits between attempts: ``wait_initial``, doubling up to ``wait_max``, each
        plus a random jitter of up to ``wait_jitter`` seconds."""
        wait = self.wait_initial
        while True:
            # Not for security: jitter only spreads clients out in time.
            yield min(wait, self.wait_max) + random.uniform(0.0, self.wait_jitter)  # noqa: S311
            wait *= 2

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, budget={self.budget:g}, "
            f"wait_initial={self.wait_initial:g}, wait_max={self.wait_max:g}, "
            f"wait_jitter={self.wait_jitter:g})"
        )


@dataclass(frozen=True, slots=True)
class _Retryable:
    """An attempt's failure that another attempt may cure (429, 502-504, a lost connection)."""

    error: HubAuthError


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``RateLimit``'s ``t=``.

    ``None`` when neither says (or says something unusable: negative waits count as 0,
    non-finite numbers and unparsable dates as nothing).
    """
    if headers is None:
        return None
    get = headers.get
    retry_after = get("Retry-After")
    if retry_after:
        value = retry_after.strip()
        seconds: float | None
        try:
            seconds = float(value)
        except ValueError:
            seconds = _seconds_until(value)
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    ratelimit = get("RateLimit")
    if ratelimit and (match := _RATELIMIT_RESET.search(ratelimit)):
        seconds = float(match.group(1))
        if math.isfinite(seconds):
            return seconds
    return None


def _seconds_until(http_date: str) -> float | None:
    """Seconds from now until an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``), if it is one."""
    try:
        when = email.utils.parsedate_to_datetime(http_date)
        if when.tzinfo is None:
            return None
        return when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _hub_message(body: bytes, headers: Mapping[str, str]) -> str | None:
    """The Hub's own error text (``X-Error-Message`` or the JSON ``error``), scrubbed."""
    text = headers.get("X-Error-Message")
    if not text and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            text = parsed["error"]
    if not text:
        return None
    return scrub(str(text))[:300]


# What an answer says about the Hub itself (HubAuth.health), not about a token.
_HEALTH_KINDS: Final = {429: ErrorKind.RATE_LIMITED}

_STATUS_KINDS: Final = {
    401: (ErrorKind.UNAUTHORIZED, "the Hub rejected the token (invalid, expired or revoked)"),
    403: (ErrorKind.FORBIDDEN, "the Hub refused the token"),
    404: (ErrorKind.NOT_FOUND, "the endpoint has no whoami API (check HF_ENDPOINT)"),
    429: (ErrorKind.RATE_LIMITED, "the Hub is rate limiting this client"),
}


def _status_error(status: int, body: bytes, headers: Mapping[str, str]) -> HubAuthError:
    kind, summary = _STATUS_KINDS.get(status, (None, ""))
    if kind is None:
        if status >= 500:
            kind, summary = ErrorKind.SERVER_ERROR, "the Hub had an internal error"
        else:
            kind, summary = ErrorKind.BAD_RESPONSE, "the Hub answered with an unexpected status"
    hub_text = _hub_message(body, headers)
    return HubAuthError(
        kind,
        f"{summary}: {hub_text}" if hub_text else summary,
        status=status,
        request_id=headers.get("X-Request-Id"),
        retry_after=parse_retry_after(headers) if status in (429, 503) else None,
    )


class HubClient:
    """Talks to one Hub endpoint over an aiohttp session it owns or borrows."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        pool_limit: int = 100,
        keep_alive: bool = True,
    ) -> None:
        self._settings = settings
        self._keep_alive = keep_alive
        self._borrowed = session
        self._session: aiohttp.ClientSession | None = session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._retry = retry or RetryPolicy()
        self._pool_limit = pool_limit
        # A URL object, parsed once: aiohttp would parse a str again on every request.
        self._whoami_url = URL(settings.endpoint + WHOAMI_PATH)
        self._timeout = aiohttp.ClientTimeout(
            total=settings.timeout, sock_connect=settings.connect_timeout
        )
        # time.monotonic() before which the Hub is not asked (it said so with a 429).
        self._rate_limited_until = 0.0
        # Called with the wait the moment the Hub says to back off (caches share it).
        self._rate_limit_listeners: list[Callable[[float], None]] = []
        self._last_heard: Heard | None = None

    @property
    def session_open(self) -> bool:
        return self._session is not None and not self._session.closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            # Also reached by a call that was in flight when aclose() ran: it must not
            # open a new session that nobody would close.
            raise RuntimeError("this HubAuth is closed; create a new one")
        session = self._session
        if session is not None and not session.closed:
            if self._borrowed is None and self._loop is not asyncio.get_running_loop():
                raise RuntimeError(
                    "this HubAuth's session belongs to another event loop; "
                    "create one HubAuth per event loop (or use HubAuthSync from sync code)"
                )
            return session
        if self._borrowed is not None:
            raise RuntimeError("the aiohttp session passed to HubAuth is closed")
        self._loop = asyncio.get_running_loop()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._pool_limit, ttl_dns_cache=300, force_close=not self._keep_alive
            ),
            timeout=self._timeout,
            headers={"user-agent": _USER_AGENT},
            raise_for_status=False,
        )
        self._session = session
        return session

    async def close(self) -> None:
        """Close for good: the session is closed and no new one will be opened."""
        self._closed = True
        session, self._session = self._session, self._borrowed
        if session is not None and self._borrowed is None and not session.closed:
            await session.close()
        self._loop = None

    def drop_session_of_another_loop(self) -> None:
        """The session was opened on an event loop that is gone (a test client runs a loop per
        request): it cannot be closed from this loop, so it is detached and the next call opens
        a new one. Only for a client made with ``keep_alive=False``, whose connections are
        closed after every request, so nothing is left open; any other client keeps its
        session set aside as after a fork."""
        session = self._session
        if session is not None and self._borrowed is None and not self._keep_alive:
            session.detach()
            self._session = None
        self.forget_session_after_fork()

    def forget_session_after_fork(self) -> None:
        """In a child after ``os.fork()``: the session, its sockets and its event loop are the
        parent's. Closing them here would act on the parent's loop, so they are set aside
        (kept referenced, so no "unclosed" warning fires) and the next call opens a new one.
        ``HubOAuth`` does the same with its own client's session when a request comes on
        another event loop than the one that opened it (a test client's loop per request)."""
        if self._session is not None and self._borrowed is None:
            _LEFT_TO_THE_PARENT.append(self._session)
            self._session = None
        self._loop = None

    async def whoami(self, token: str) -> Result[UserInfo]:
        """``GET /api/whoami-v2`` with retries; the body parsed into ``UserInfo``."""
        now = time.monotonic()
        if self._rate_limited_until > now and (limited := self._still_rate_limited()):
            return Err(limited)
        policy = self._retry
        deadline = now + policy.budget
        waits: Iterator[float] | None = None  # made on the first retry: most calls have none
        attempt = 1
        while True:
            outcome = await self._whoami_attempt(token, deadline)
            if not isinstance(outcome, _Retryable):
                return outcome
            error = outcome.error
            if attempt >= policy.max_attempts:
                return Err(error)
            if waits is None:
                waits = policy.backoff()
            # The Hub's own wait when it gave one (Retry-After, RateLimit t=), else backoff.
            wait = error.retry_after if error.retry_after is not None else next(waits)
            if wait >= deadline - time.monotonic():
                # The wait would not fit the budget: answer now rather than late.
                return Err(error)
            logger.debug(
                "whoami attempt %d of %d failed, retrying in %.2fs: %s",
                attempt,
                policy.max_attempts,
                wait,
                error,
            )
            await asyncio.sleep(wait)
            attempt += 1

    def add_rate_limit_listener(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(seconds)`` whenever the Hub says to stop asking (a 429 with a wait,
        or a ``RateLimit`` of ``r=0;t=N``), before any retry: a cache shares the wait with
        the other clients and replicas at once."""
        self._rate_limit_listeners.append(listener)

    def _back_off(self, wait: float) -> None:
        wait = min(wait, MAX_RATE_LIMIT_WAIT)
        self._rate_limited_until = max(self._rate_limited_until, time.monotonic() + wait)
        for listener in self._rate_limit_listeners:
            listener(wait)

    def _still_rate_limited(self) -> HubAuthError | None:
        """A fresh ``rate_limited`` error while a 429's wait lasts, else ``None``."""
        remaining = self._rate_limited_until - time.monotonic()
        if remaining <= 0:
            return None
        return HubAuthError(
            ErrorKind.RATE_LIMITED,
            "the Hub is rate limiting this client, which does not ask it again before the "
            "wait it gave is over; a whoami cache (MemoryCache, RedisCache) asks it less often",
            retry_after=remaining,
        )

    def _remember_rate_limit(self, error: HubAuthError) -> None:
        """After a 429 that says when to come back, ask nobody's token until then."""
        if error.kind is ErrorKind.RATE_LIMITED and error.retry_after is not None:
            self._back_off(error.retry_after)

    def _remember_exhausted_quota(self, headers: Mapping[str, str]) -> None:
        """A success whose ``RateLimit`` says ``r=0;t=N``: the next request would be a 429,
        so ask nobody's token for N seconds (as after a 429)."""
        ratelimit = headers.get("RateLimit")
        if ratelimit and _RATELIMIT_EXHAUSTED.search(ratelimit):
            wait = parse_retry_after({"RateLimit": ratelimit})
            if wait:
                self._back_off(wait)

    def _attempt_timeout(self, deadline: float) -> tuple[aiohttp.ClientTimeout, bool]:
        """This request's timeout, cut to what is left of the budget (and whether it was cut)."""
        remaining = deadline - time.monotonic()
        if remaining >= self._settings.timeout:
            return self._timeout, False
        remaining = max(remaining, 0.001)
        connect = min(self._settings.connect_timeout, remaining)
        return aiohttp.ClientTimeout(total=remaining, sock_connect=connect), True

    async def _whoami_attempt(self, token: str, deadline: float) -> Result[UserInfo] | _Retryable:
        """One whoami request; the failures another attempt may cure are returned as such."""
        timeout, cut = self._attempt_timeout(deadline)
        with _telemetry.hub_request("GET", self._whoami_url, whoami=True) as traced:
            answered = await self._request(
                "GET",
                self._whoami_url,
                # MaskedStr: a locals-capturing error reporter sees "Bearer hf_****abcd" here
                # and in aiohttp's frames below, which keep the value object as it is.
                headers={"authorization": MaskedStr(f"Bearer {token}")},
                time_limit=timeout,
                timeout_note=(
                    f" (what was left of the {self._retry.budget:g} s retry budget)" if cut else ""
                ),
            )
            self._heard(answered, traced, hub=True)
        if not isinstance(answered, Ok):
            return answered
        answer = answered.value
        if answer.status == 200:
            self._remember_exhausted_quota(answer.headers)
            return parse_whoami(answer.body, request_id=answer.request_id)
        error = _status_error(answer.status, answer.body, answer.headers)
        self._remember_rate_limit(error)
        if answer.status in _RETRY_STATUSES:
            return _Retryable(error)
        return Err(error)

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        time_limit: float | None = None,
        **parts: Unpack[RequestParts],
    ) -> Result[RawAnswer]:
        """One request without retries, its answer left for the caller to read (device login,
        refresh, the OIDC exchange, ``HubOAuth``'s provider calls): any status is ``Ok``.

        ``Err(network/timeout/bad_response)`` when no usable answer came; ``time_limit``
        (seconds) replaces the client's timeout for this request. See ``_request``.
        """
        request_timeout = None
        if time_limit is not None:
            connect = min(time_limit, self._settings.connect_timeout)
            request_timeout = aiohttp.ClientTimeout(total=time_limit, sock_connect=connect)
        with _telemetry.hub_request(method, url) as traced:
            answered = await self._request(method, url, time_limit=request_timeout, **parts)
            to_hub = str(url).startswith(self._settings.endpoint + "/")
            self._heard(answered, traced, hub=to_hub)
        return Err(answered.error) if isinstance(answered, _Retryable) else answered

    def _heard(
        self,
        answered: Result[RawAnswer] | _Retryable,
        traced: _telemetry.HubRequest | _telemetry.Nothing,
        *,
        hub: bool,
    ) -> None:
        """Note how a request went: on its span, and (``hub``: it went to the Hub) as what was
        last heard from the Hub (``HubAuth.health``)."""
        if isinstance(answered, Ok):
            answer = answered.value
            status: int | None = answer.status
            request_id = answer.request_id
            kind = _HEALTH_KINDS.get(answer.status)
            if kind is None and answer.status >= 500:
                kind = ErrorKind.SERVER_ERROR
        else:
            error = answered.error
            status, request_id, kind = error.status, error.request_id, error.kind
        traced.answered(status, request_id, kind)
        if hub:
            self._last_heard = Heard(time.monotonic(), status, kind)

    @property
    def last_heard(self) -> Heard | None:
        """What the last request to the Hub got (``None`` before the first)."""
        return self._last_heard

    def backoff_remaining(self) -> float:
        """Seconds left of the Hub's rate-limit backoff (0 when there is none)."""
        return max(0.0, self._rate_limited_until - time.monotonic())

    async def _request(
        self,
        method: str,
        url: str | URL,
        *,
        time_limit: aiohttp.ClientTimeout | None = None,
        timeout_note: str = "",
        **parts: Unpack[RequestParts],
    ) -> Result[RawAnswer] | _Retryable:
        """The one request path of this client: every call to the Hub (and to the OpenID
        provider or CI service a caller names) goes through here.

        - ``time_limit`` (else the client's timeout) is passed on every request: a borrowed
          session's own timeout must not apply;
        - a ``GET`` follows redirects on the same origin only (scheme, host, port), at most
          ``_MAX_REDIRECTS``: a token or a form never goes to another host; other methods
          return the redirect as it is;
        - the body is read whole only when its length is known, at most ``MAX_BODY_BYTES``
          and uncompressed, else through the bounded loop of ``_read_body``;
        - foreign exceptions become a ``HubAuthError`` named by cause and origin (never from
          ``str(exc)``, never a header or body); connection failures that another attempt
          may cure come back as ``_Retryable``, a certificate this client does not trust as
          ``Err`` (it will not become trusted in a second).
        """
        session = self._get_session()
        timeout = time_limit or self._timeout
        requested = url  # named in error messages: _where parses URLs, so only on failure
        headers, params = parts.get("headers"), parts.get("params")
        form, json_body = parts.get("form"), parts.get("json_body")
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                async with session.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    data=dict(form) if form is not None else None,
                    json=json_body,
                    allow_redirects=False,
                    timeout=timeout,
                ) as response:
                    status = response.status
                    if method == "GET" and 300 <= status < 400 and status != 304:
                        next_url = self._same_host_redirect(response)
                        if isinstance(next_url, HubAuthError):
                            return Err(next_url)
                        url, params = next_url, None  # the Location carries the query
                        continue
                    # The common case inline (no coroutine of its own): an uncompressed body
                    # of known, bounded length; anything else goes through the bounded loop.
                    length = response.content_length
                    if (
                        length is not None
                        and length <= MAX_BODY_BYTES
                        and "Content-Encoding" not in response.headers
                    ):
                        body: bytes | HubAuthError = await response.read()
                    else:
                        body = await self._read_body(response)
                    if isinstance(body, HubAuthError):
                        return Err(body)
                    request_id = response.headers.get("X-Request-Id")
                    return Ok(RawAnswer(status, body, request_id, response.headers))
            return Err(HubAuthError(ErrorKind.BAD_RESPONSE, "the Hub redirected too many times"))
        except TimeoutError:
            where = self._where(requested)
            after = timeout.total or self._settings.timeout
            return Err(
                HubAuthError(
                    ErrorKind.TIMEOUT,
                    f"could not reach {where}: timed out after {after:.3g} s{timeout_note}",
                )
            )
        except aiohttp.ClientResponseError as exc:
            where = self._where(requested)
            return Err(
                HubAuthError(
                    ErrorKind.BAD_RESPONSE,
                    f"{where} sent a malformed response: {scrub(exc.message)[:200]}",
                    status=exc.status or None,
                )
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            where = self._where(requested)
            return Err(self._network_error(where, _certificate_cause(exc.certificate_error)))
        except aiohttp.InvalidURL:
            # A URL aiohttp cannot use (from the environment: ACTIONS_ID_TOKEN_REQUEST_URL).
            where = self._where(requested)
            return Err(self._network_error(where, "the URL is not usable"))
        except (aiohttp.ClientError, OSError) as exc:
            where = self._where(requested)
            return _Retryable(self._network_error(where, _network_cause(exc)))

    @property
    def _origin(self) -> str:
        return endpoint_origin(self._settings.endpoint)

    def _where(self, url: str | URL) -> str:
        """Whom a message names: "the Hub at ORIGIN", or another service by its origin."""
        origin = endpoint_origin(str(url))
        return f"the Hub at {origin}" if origin == self._origin else origin

    @staticmethod
    def _network_error(where: str, cause: str) -> HubAuthError:
        return HubAuthError(ErrorKind.NETWORK, f"could not reach {where}: {cause}")

    def _same_host_redirect(self, response: aiohttp.ClientResponse) -> str | HubAuthError:
        location = response.headers.get("Location")
        request_id = response.headers.get("X-Request-Id")
        if not location:
            return HubAuthError(
                ErrorKind.BAD_RESPONSE,
                "the Hub answered a redirect without a Location",
                status=response.status,
                request_id=request_id,
            )
        origin = response.url
        try:
            target = origin.join(URL(location))
            where = (target.scheme, target.host, target.port)
        except (ValueError, TypeError):
            # A Location yarl cannot parse (bad IPv6 literal, port out of range, ...).
            return HubAuthError(
                ErrorKind.BAD_RESPONSE,
                "the Hub answered a redirect to an invalid location",
                status=response.status,
                request_id=request_id,
            )
        if where != (origin.scheme, origin.host, origin.port):
            # Following would hand the token to another host; refuse instead.
            return HubAuthError(
                ErrorKind.BAD_RESPONSE,
                f"the Hub redirected to another host ({scrub(str(target.host))[:100]}); "
                "not following with credentials",
                status=response.status,
                request_id=request_id,
            )
        if target.user is not None or target.password is not None:
            # aiohttp refuses URL credentials next to an Authorization header (and they
            # have no business in a redirect from the Hub).
            return HubAuthError(
                ErrorKind.BAD_RESPONSE,
                "the Hub redirected to a location with credentials in it; not following",
                status=response.status,
                request_id=request_id,
            )
        return str(target)

    @staticmethod
    async def _read_body(response: aiohttp.ClientResponse) -> bytes | HubAuthError:
        # response.read() only when the length is known and uncompressed (``_request`` does
        # that itself): Content-Length may be absent (chunked) or count compressed bytes, and
        # a small gzip body can inflate to gigabytes. Leaving the rest unread makes aiohttp
        # close the connection instead of draining it.
        length = response.content_length
        if length is None or length <= MAX_BODY_BYTES:
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_BODY_BYTES:
                data = await response.content.read(MAX_BODY_BYTES + 1 - size)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
                size += len(data)
        return HubAuthError(
            ErrorKind.BAD_RESPONSE,
            f"the Hub's answer is larger than {MAX_BODY_BYTES} bytes",
            status=response.status,
            request_id=response.headers.get("X-Request-Id"),
        )

    async def post_oauth_form(
        self, path: str, form: Mapping[str, str]
    ) -> Result[tuple[int, dict[str, object]]]:
        """One form-encoded ``POST`` to the Hub's OAuth endpoint ``path``, without retries.

        For a public OAuth client: no Authorization header, no redirects followed, the
        configured timeout, the body bounded. Any answer whose body is a JSON object is
        ``Ok((status, body))``, errors included (OAuth errors are JSON with an ``error``);
        the caller reads it. ``Err``: ``network``, ``timeout``, or ``bad_response`` (not a
        JSON object; for a 5xx, ``server_error``). The form (secrets) is never logged.
        """
        answered = await self.request("POST", self._settings.endpoint + path, form=form)
        if isinstance(answered, Err):
            return answered
        status, body, _, headers = answered.value
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            return Err(_status_error(status, body, headers) if status >= 400 else _not_json(status))
        return Ok((status, parsed))


def _not_json(status: int) -> HubAuthError:
    return HubAuthError(
        ErrorKind.BAD_RESPONSE, "the Hub's OAuth answer is not a JSON object", status=status
    )


def _certificate_cause(error: BaseException) -> str:
    """ "TLS certificate not trusted", with the verifier's reason (``self-signed certificate``)."""
    reason = getattr(error, "verify_message", None) if isinstance(error, ssl.SSLError) else None
    if isinstance(reason, str) and reason:
        return f"TLS certificate not trusted ({scrub(reason)[:100]})"
    return "TLS certificate not trusted"


def _network_cause(exc: BaseException) -> str:
    """A connection failure in plain words, by type: never aiohttp's repr (``ssl:default``)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
        if isinstance(exc, socket.gaierror):
            return "name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before the Hub answered"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the connection broke while the answer was being read"
    if isinstance(exc, OSError) and exc.strerror:
        return scrub(exc.strerror).lower()[:100]
    return f"network error ({type(exc).__name__})"


def parse_whoami(body: bytes, *, request_id: str | None = None) -> Result[UserInfo]:
    """Parse a 200 answer of ``/api/whoami-v2``: ``Ok(UserInfo)`` or ``Err(bad_response)``.

    Pure and total: whatever the bytes, it returns, and the message names where the body
    went wrong without quoting it (scrubbed all the same: a key could be token-shaped).
    """
    try:
        return Ok(UserInfo.model_validate_json(body))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[:1]
        where = ".".join(str(part) for part in first[0]["loc"]) if first else ""
        reason = first[0]["msg"] if first else "invalid"
        message = f"the Hub's whoami answer is not a user ({where or 'body'}: {reason})"
    except (ValueError, RecursionError):
        # Belt and braces: pydantic reports bad JSON as a ValidationError, but a validator
        # raising something else must not escape as an exception either.
        message = "the Hub's whoami answer is not a user (body: cannot be parsed)"
    return Err(
        HubAuthError(
            ErrorKind.BAD_RESPONSE, scrub(message)[:500], status=200, request_id=request_id
        )
    )
