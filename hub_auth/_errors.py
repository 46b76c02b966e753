"""The one error type of hub_auth and the one place foreign errors are mapped onto it.

Error tree::

    Exception
    └── HubAuthError            kind: ErrorKind, status, request_id, retry_after
        └── LoopRunningError    (also a RuntimeError) a sync call inside a running event loop

``HubAuthError`` travels inside ``Err`` for expected failures; it is raised only by
``Err.unwrap()`` and by misuse of the sync facade. Its message never contains a token.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorKind", "HubAuthError"]


class ErrorKind(StrEnum):
    """What went wrong, in a form a program can branch on."""

    NO_TOKEN = "no_token"
    """No token was given and none is configured (argument, environment, token file)."""
    INVALID_TOKEN = "invalid_token"
    """The token is malformed, or the Hub rejected it (from ``validate_token``)."""
    UNAUTHORIZED = "unauthorized"
    """The Hub answered 401: the token is invalid, expired or revoked."""
    FORBIDDEN = "forbidden"
    """The Hub answered 403: the token is known but refused (e.g. an org policy)."""
    RATE_LIMITED = "rate_limited"
    """The Hub answered 429; ``retry_after`` says when to try again, when known."""
    NETWORK = "network"
    """The connection failed (refused, reset, DNS)."""
    TIMEOUT = "timeout"
    """The Hub did not answer in time."""
    SERVER_ERROR = "server_error"
    """The Hub answered 5xx."""
    BAD_RESPONSE = "bad_response"
    """The Hub's answer could not be understood (not JSON, wrong shape, too large)."""
    OFFLINE = "offline"
    """``HF_HUB_OFFLINE`` forbids network calls."""
    NOT_FOUND = "not_found"
    """A named thing (a stored token, an endpoint) does not exist."""
    STORAGE = "storage"
    """A login file could not be read or written."""
    ACCESS_DENIED = "access_denied"
    """The person asked to approve a device login (or an OAuth sign-in) refused it."""
    EXPIRED = "expired"
    """A device code (or another short-lived grant) expired before it was used."""
    LOOP_RUNNING = "loop_running"
    """A sync facade call was made inside a running event loop (raised, never returned)."""


class HubAuthError(Exception):
    """An expected failure, with a machine-readable ``kind`` and a human message.

    Attributes:
        kind: What went wrong.
        message: A sentence for a person; never contains a token.
        status: The HTTP status of the Hub's answer, when there was one.
        request_id: The Hub's ``X-Request-Id`` (what Hub support asks for).
        retry_after: Seconds to wait before retrying, when the Hub said so.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        extra = []
        if self.status is not None:
            extra.append(f"status {self.status}")
        if self.request_id:
            extra.append(f"request id {self.request_id}")
        if self.retry_after is not None:
            extra.append(f"retry after {self.retry_after:g}s")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message

    def __repr__(self) -> str:
        parts = [f"kind={self.kind.value!r}", f"message={self.message!r}"]
        for name in ("status", "request_id", "retry_after"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"HubAuthError({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HubAuthError):
            return NotImplemented
        return (self.kind, self.message, self.status, self.request_id, self.retry_after) == (
            other.kind,
            other.message,
            other.status,
            other.request_id,
            other.retry_after,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.message, self.status, self.request_id, self.retry_after))

    def __copy__(self) -> HubAuthError:
        """A new error with the same content and no traceback, cause or context.

        A cache hands each caller its own copy, so raising it in one task does not chain
        tracebacks onto an object other tasks hold.
        """
        return _rebuild(
            self.kind.value, self.message, self.status, self.request_id, self.retry_after
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild,
            (self.kind.value, self.message, self.status, self.request_id, self.retry_after),
        )


def _rebuild(
    kind: str, message: str, status: int | None, request_id: str | None, retry_after: float | None
) -> HubAuthError:
    return HubAuthError(
        ErrorKind(kind), message, status=status, request_id=request_id, retry_after=retry_after
    )
