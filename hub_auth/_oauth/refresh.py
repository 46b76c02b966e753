"""Refresh of stored OAuth tokens, as huggingface_hub does it (``utils/_auth.py``).

A browser (device) login stores an ``hf_oauth_`` token in ``stored_tokens`` with a
``refresh_token`` and ``expires_at`` (integer Unix seconds). Whenever ``HubAuth`` resolves the
token from the token file and that token is such an entry with less than a day left, it is
refreshed first:

1. ``POST {endpoint}/oauth/token``, form ``grant_type=refresh_token``, ``refresh_token``,
   ``client_id`` (``HF_DEVICE_CODE_OAUTH_CLIENT_ID`` or huggingface_hub's public id), with the
   client's timeout and no retries;
2. under ``stored_tokens.lock``, taken in a worker thread and held across the request (a
   rotating refresh token works once: two processes must not both spend it), with
   huggingface_hub's re-read rule: if the entry no longer holds the token, another process
   refreshed it, and its token is used; otherwise the entry gets the new token, the rotated
   refresh token (or the old one) and the new expiry, and the token file the new token if it
   still held the old one (``TokenStore.refresh_entry``).

A refresh token is sent only to the Hub that issued it. hub_auth records that Hub in the
entry when it stores a device login (``hub_auth_endpoint``, ``_login.store.ENDPOINT_KEY``);
an entry without the key (huggingface_hub's logins: it refreshes at whatever ``HF_ENDPOINT``
says) counts as issued by ``https://huggingface.co``. At any other endpoint the access token
is used as it is, the refresh token is never sent and the files are never rewritten; one
warning per process and login says how to log in at that endpoint instead
(``refresh_endpoint``, ``refreshes_at``). A mirror or a mistyped ``HF_ENDPOINT`` thus never
receives a live refresh token, and its answer never replaces the login.

Within a ``HubAuth``, concurrent calls share one refresh (single-flight keyed by the stored
token), and the decision is remembered: a token far from expiry is looked at again when it
gets close, one that is not a stored OAuth token after ``RECHECK_INTERVAL``. A refresh never
fails the call: on ``invalid_grant`` (session expired or revoked) one warning says to log in
again and the process stops trying for that token; on any other failure the old token is used
and the refresh is tried again ``RECHECK_INTERVAL`` later. Tokens given explicitly or taken
from the environment never come here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeGuard
from urllib.parse import urlsplit

from hub_auth import _telemetry
from hub_auth._cache.flight import SingleFlight
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._logging import LOGGER_NAME
from hub_auth._login.store import ENDPOINT_KEY, entry_endpoint, entry_token
from hub_auth._oauth import (
    REFRESH_TOKEN_GRANT,
    STORED_TOKEN_REFRESH_MARGIN,
    TOKEN_PATH,
    token_lifetime,
)
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import DEFAULT_ENDPOINT, endpoint_origin
from hub_auth._tokens import MaskedStr, check_format, clean_token, scrub

if TYPE_CHECKING:
    from hub_auth._http import HubClient
    from hub_auth._login.store import TokenStore

__all__ = ["RECHECK_INTERVAL", "StoredTokenRefresher", "refresh_endpoint", "refreshes_at"]

logger = logging.getLogger(LOGGER_NAME)

RECHECK_INTERVAL: Final = 300.0
"""Seconds before a failed refresh is tried again, or a non-OAuth token looked at again."""
EXPIRED_LOGIN_WARNING: Final = (
    "your Hugging Face login has expired and could not be refreshed; log in again: `hub-auth login`"
)

# Tokens whose refresh token the Hub refused, process-wide (hashed: no secret kept here).
# The refresh will not be tried again in this process, and the warning was given once.
_given_up: set[str] = set()
_once_lock = threading.Lock()
# (token hash, endpoint) pairs already warned about: a login of another Hub, once per process.
_warned_elsewhere: set[tuple[str, str]] = set()


def refresh_endpoint(fields: Mapping[str, str]) -> str:
    """The one Hub the refresh token of a ``stored_tokens`` entry may be sent to: the one
    hub_auth recorded, else ``https://huggingface.co`` (a login written by huggingface_hub,
    which does not record it)."""
    return entry_endpoint(fields) or DEFAULT_ENDPOINT


def refreshes_at(fields: Mapping[str, str], endpoint: str) -> bool:
    """Whether hub_auth refreshes the entry's login when talking to ``endpoint``."""
    issuer = _hub_identity(refresh_endpoint(fields))
    return issuer is not None and issuer == _hub_identity(endpoint)


def _hub_identity(endpoint: str) -> tuple[str, str, int, str] | None:
    """Scheme, host, port and path of an endpoint, for comparison (``None``: not a URL)."""
    try:
        parts = urlsplit(endpoint.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    default_port = 443 if scheme == "https" else 80
    return scheme, parts.hostname.lower(), port or default_port, parts.path.rstrip("/")


def _elsewhere_warning(name: str, fields: Mapping[str, str], endpoint: str) -> str:
    # Both shown as scheme://host[:port] and quoted: the recorded one comes from a file, and
    # the rule for endpoints in messages keeps any path, user or password out of them.
    here = repr(endpoint_origin(endpoint))
    login_there = f"to use {here}, log in there: `hub-auth login --endpoint {here}`"
    if (issuer := entry_endpoint(fields)) is not None:
        return (
            f"the stored login {name!r} belongs to {endpoint_origin(issuer)!r}: its refresh "
            f"token is sent only there, so at {here} its access token is used as it is, "
            f"without refresh; {login_there}"
        )
    return (
        f"the stored login {name!r} does not say which Hub issued it (huggingface_hub does "
        f"not record it), so hub_auth refreshes it only at {DEFAULT_ENDPOINT}; at {here} its "
        f"access token is used as it is, without refresh; {login_there}"
    )


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _expires_at(raw: str | None) -> int | None:
    """``expires_at`` as huggingface_hub reads it: an integer, else nothing."""
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Decision:
    """The token to use for a stored token, until ``recheck_at`` (wall clock)."""

    token: str = field(repr=False)
    recheck_at: float


class StoredTokenRefresher:
    """Keeps the token file's token fresh for one ``HubAuth`` (see the module docstring)."""

    def __init__(
        self,
        store: TokenStore,
        client: HubClient,
        *,
        endpoint: str,
        client_id: str,
        lock_timeout: float,
    ) -> None:
        self._store = store
        self._client = client
        self._endpoint = endpoint
        self._client_id = client_id
        self._lock_timeout = lock_timeout
        self._decisions: dict[str, _Decision] = {}
        self._flight: SingleFlight[str, str] = SingleFlight()
        self._warned_failure = False

    def __repr__(self) -> str:
        return f"<StoredTokenRefresher store={self._store!r}>"

    async def fresh(self, stored: str) -> str:
        """``stored`` (the token file's token), or the token that replaces it once refreshed."""
        decision = self._decisions.get(stored)
        if decision is not None and time.time() < decision.recheck_at:
            return decision.token
        return await self._flight.run(stored, functools.partial(self._check, stored))

    def _decide(self, stored: str, token: str, recheck_at: float) -> str:
        self._decisions[stored] = _Decision(MaskedStr(token), recheck_at)
        return token

    async def _check(self, stored: str) -> str:
        now = time.time()
        # stored_tokens is a tiny local file: read on the loop, as the token file is.
        entries = self._store.read_entries()
        if isinstance(entries, Err):
            logger.debug("not refreshing the token: %s", entries.error)
            return self._decide(stored, stored, now + RECHECK_INTERVAL)
        name, fields = next(
            ((n, f) for n, f in entries.value.items() if entry_token(f) == stored), (None, {})
        )
        expires_at = _expires_at(fields.get("expires_at"))
        if name is None or not fields.get("refresh_token") or expires_at is None:
            # A refresh by another process may have just replaced it: use the new one.
            current = self._store.read_active().unwrap_or(None)
            if current is not None and current != stored:
                return current
            return self._decide(stored, stored, now + RECHECK_INTERVAL)
        if expires_at - STORED_TOKEN_REFRESH_MARGIN > now:
            return self._decide(stored, stored, expires_at - STORED_TOKEN_REFRESH_MARGIN)
        if not refreshes_at(fields, self._endpoint):
            with _once_lock:
                first = (_key(stored), self._endpoint) not in _warned_elsewhere
                _warned_elsewhere.add((_key(stored), self._endpoint))
            if first:
                logger.warning("%s", _elsewhere_warning(name, fields, self._endpoint))
            # This client's endpoint never changes: neither does the answer.
            return self._decide(stored, stored, math.inf)
        with _once_lock:
            if _key(stored) in _given_up:
                return self._decide(stored, stored, math.inf)
        return await self._refresh(name, stored)

    async def _refresh(self, name: str, stored: str) -> str:
        import anyio.to_thread  # only when a stored OAuth login is refreshed, not per whoami

        now = time.time()
        refresh = functools.partial(
            self._store.refresh_entry,
            name,
            stored,
            self._renew_from_worker,
            lock_timeout=self._lock_timeout,
        )
        # The lock is taken, held across the request and released in this worker thread:
        # never on the event loop's thread.
        with _telemetry.flow(_telemetry.TOKEN_REFRESH) as traced:
            refreshed = traced.result(await anyio.to_thread.run_sync(refresh))
        match refreshed:
            case Ok(token):
                if token != stored:
                    logger.info("the stored OAuth token %r was refreshed", name)
                # Looked at again soon: the entry's new expiry decides when after that.
                self._decide(token, token, now + RECHECK_INTERVAL)
                return self._decide(stored, token, now + RECHECK_INTERVAL)
            case Err(error) if error.kind is ErrorKind.EXPIRED:
                with _once_lock:
                    first = _key(stored) not in _given_up
                    _given_up.add(_key(stored))
                if first:
                    logger.warning("%s (stored token %r: %s)", EXPIRED_LOGIN_WARNING, name, error)
                return self._decide(stored, stored, math.inf)
            case Err(error):
                level = logging.DEBUG if self._warned_failure else logging.WARNING
                self._warned_failure = True
                logger.log(
                    level,
                    "could not refresh the stored OAuth token %r (%s); using it as it is and "
                    "trying again in %d minutes",
                    name,
                    error,
                    RECHECK_INTERVAL // 60,
                )
                return self._decide(stored, stored, now + RECHECK_INTERVAL)
        raise AssertionError("unreachable")  # pragma: no cover

    def _renew_from_worker(self, fields: Mapping[str, str]) -> Result[dict[str, str]]:
        """In the worker thread holding the lock: run the request on the event loop."""
        import anyio.from_thread

        return anyio.from_thread.run(self._renew, fields)

    async def _renew(self, fields: Mapping[str, str]) -> Result[dict[str, str]]:
        """The refresh request; ``Ok`` with the entry's new keys, ``Err(expired)`` for
        ``invalid_grant``, another ``Err`` for anything else."""
        refresh_token = clean_token(fields.get("refresh_token"))
        if refresh_token is None:
            return Err(HubAuthError(ErrorKind.EXPIRED, "the entry has no refresh token anymore"))
        if not refreshes_at(fields, self._endpoint):  # re-read under the lock: checked again
            return Err(
                HubAuthError(
                    ErrorKind.STORAGE,
                    f"the stored login now belongs to {refresh_endpoint(fields)}, not to "
                    f"{self._endpoint}; its refresh token is not sent here",
                )
            )
        started = int(time.time())
        answer = await self._client.post_oauth_form(
            TOKEN_PATH,
            {
                "grant_type": REFRESH_TOKEN_GRANT,
                "refresh_token": refresh_token,
                "client_id": self._client_id,
            },
        )
        if isinstance(answer, Err):
            return answer
        status, body = answer.value
        access_token = body.get("access_token")
        if status == 200 and isinstance(access_token, str) and not check_format(access_token):
            rotated = body.get("refresh_token")
            renewed: dict[str, str] = {
                "hf_token": access_token,
                # The Hub may rotate the refresh token (the old one then stops working).
                "refresh_token": rotated if _storable(rotated) else refresh_token,
                # Where it was refreshed, which a login of huggingface_hub did not record.
                ENDPOINT_KEY: refresh_endpoint(fields),
            }
            expires_in = body.get("expires_in")
            if _is_seconds(expires_in):
                renewed["expires_at"] = str(started + int(token_lifetime(expires_in, 0.0)))
            return Ok(renewed)
        error = body.get("error")
        described = body.get("error_description")
        detail = f"{error}: {described}" if described else str(error)
        # Nothing the Hub echoes may carry the refresh token into a log line.
        detail = scrub(detail, refresh_token)[:200]
        if error == "invalid_grant":
            return Err(
                HubAuthError(
                    ErrorKind.EXPIRED,
                    f"the Hub refused the refresh token (session expired or revoked; {detail})",
                    status=status,
                )
            )
        if status == 200:
            return Err(
                HubAuthError(
                    ErrorKind.BAD_RESPONSE,
                    "the Hub's refresh answer has no usable access token",
                    status=status,
                )
            )
        kind = ErrorKind.SERVER_ERROR if status >= 500 else ErrorKind.BAD_RESPONSE
        return Err(HubAuthError(kind, f"the Hub answered {status} ({detail})", status=status))


def _storable(value: object) -> TypeGuard[str]:
    """A refresh token the INI file can hold as it is."""
    return isinstance(value, str) and bool(value) and clean_token(value) == value


def _is_seconds(value: object) -> TypeGuard[int | float]:
    """A finite number of seconds (``expires_in``), not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
