"""Device-code login (RFC 8628): ask the Hub for a code, then poll until the person decides.

Protocol only, no printing and no files: ``HubAuth.start_device_login`` and
``HubAuth.complete_device_login`` call it and store the result. It follows huggingface_hub's
``utils/_oauth_device.py`` (facts: ``shared/reference/OAUTH_FACTS.md``):

- ``POST {endpoint}/oauth/device`` with only ``client_id`` (a public client: no secret, no
  Authorization header, no scope);
- ``POST {endpoint}/oauth/token`` with the device-code grant: first poll at once, then sleep
  ``interval`` after each answer that is not final; ``slow_down`` adds 5 seconds for the rest
  of the loop; 5xx, 429, network errors, non-JSON bodies and JSON without ``error`` are
  transient (RFC 8628 §3.5); ``access_denied`` and ``expired_token`` end it, and so does the
  code's expiry (``DeviceCode.expires_at``).

``sleep`` and ``clock`` are parameters so that a test can watch the waits without waiting.
The device code and the tokens stay ``SecretStr``/``MaskedStr``: no repr or log shows them,
and no message either: Hub text quoted in an error has the device code masked (``scrub``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._logging import LOGGER_NAME
from hub_auth._models import DeviceCode
from hub_auth._oauth import (
    CLIENT_ID_ENV,
    DEVICE_CODE_GRANT,
    DEVICE_PATH,
    TOKEN_PATH,
    token_lifetime,
)
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import MaskedStr, check_format, mask_token, scrub

if TYPE_CHECKING:
    from hub_auth._http import HubClient

__all__ = ["TokenGrant", "poll_for_token", "request_device_code"]

logger = logging.getLogger(LOGGER_NAME)

SLOW_DOWN_STEP: Final = 5.0
DEFAULT_INTERVAL: Final = 5.0
DEFAULT_EXPIRES_IN: Final = 900.0
# A code that claims to live longer than a day is a broken answer; keep the wait bounded.
MAX_EXPIRES_IN: Final = 86400.0
# What an INI value in stored_tokens can hold (printable ASCII, no spaces).
_REFRESH_TOKEN = re.compile(r"[!-~]{8,4096}")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, repr=False)
class TokenGrant:
    """A successful token answer: the access token, its refresh token and lifetime."""

    access_token: str
    refresh_token: str | None
    expires_in: int | None

    def __repr__(self) -> str:
        refresh = "set" if self.refresh_token else "none"
        return (
            f"TokenGrant(access_token={mask_token(self.access_token)!r}, "
            f"refresh_token={refresh}, expires_in={self.expires_in!r})"
        )


async def request_device_code(
    http: HubClient, client: str, *, clock: Callable[[], float] = time.time
) -> Result[DeviceCode]:
    """``POST /oauth/device``: a new ``DeviceCode`` (missing fields get huggingface_hub's
    defaults: ``interval`` 5, ``expires_in`` 900, ``verification_uri_complete`` =
    ``verification_uri``)."""
    answered = await http.post_oauth_form(DEVICE_PATH, {"client_id": client})
    if isinstance(answered, Err):
        return answered
    status, data = answered.value
    if status != 200:
        return Err(_start_error(status, data))
    fields: dict[str, str] = {
        name: value for name in _REQUIRED if isinstance(value := data.get(name), str) and value
    }
    if len(fields) < len(_REQUIRED):
        missing = ", ".join(name for name in _REQUIRED if name not in fields)
        return Err(
            HubAuthError(
                ErrorKind.BAD_RESPONSE,
                f"the Hub's answer to the device login request lacks {missing}",
                status=status,
            )
        )
    complete = data.get("verification_uri_complete")
    expires_in = min(_positive(data.get("expires_in"), DEFAULT_EXPIRES_IN), MAX_EXPIRES_IN)
    return Ok(
        DeviceCode(
            device_code=SecretStr(fields["device_code"]),
            user_code=fields["user_code"],
            verification_uri=fields["verification_uri"],
            verification_uri_complete=(
                complete if isinstance(complete, str) and complete else fields["verification_uri"]
            ),
            interval=_positive(data.get("interval"), DEFAULT_INTERVAL),
            expires_at=datetime.fromtimestamp(clock(), tz=UTC) + timedelta(seconds=expires_in),
        )
    )


_REQUIRED: Final = ("device_code", "user_code", "verification_uri")


async def poll_for_token(
    http: HubClient,
    device: DeviceCode,
    client: str,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    on_pending: Callable[[], None] | None = None,
) -> Result[TokenGrant]:
    """Poll ``POST /oauth/token`` until the person approves or denies, or the code expires.

    Returns ``Ok(TokenGrant)``; ``Err(access_denied)``; ``Err(expired)`` for
    ``expired_token`` or once ``device.expires_at`` has passed; ``Err(bad_response)`` for any
    other OAuth error or an unusable token answer. ``on_pending`` is called after each
    ``authorization_pending`` (the CLI prints a dot). Cancelling the task stops it.
    """
    interval = device.interval
    deadline = device.expires_at.timestamp()
    form = {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": MaskedStr(device.device_code.get_secret_value()),
        "client_id": client,
    }
    while clock() < deadline:
        answer = _read_token_answer(await http.post_oauth_form(TOKEN_PATH, form))
        if isinstance(answer, TokenGrant):
            return Ok(answer)
        if isinstance(answer, HubAuthError):
            return Err(answer)
        match answer:
            case ("authorization_pending", _):
                if on_pending is not None:
                    on_pending()
            case ("slow_down", _):
                interval += SLOW_DOWN_STEP
            case ("expired_token", _):
                return Err(_expired("the device code expired before the login was approved"))
            case ("access_denied", _):
                return Err(
                    HubAuthError(
                        ErrorKind.ACCESS_DENIED,
                        "the device login was denied in the browser; start a new login "
                        "to try again",
                    )
                )
            case (str(error), description):
                # The Hub may echo the device code: with it, anyone could finish this login.
                said = f"{error} - {description}" if description else error
                text = scrub(said, form["device_code"])[:300]
                return Err(
                    HubAuthError(
                        ErrorKind.BAD_RESPONSE,
                        f"the Hub refused the device login (OAuth error: {text}); start a new "
                        f"login (a wrong {CLIENT_ID_ENV} gives invalid_client)",
                    )
                )
            case None:
                pass  # transient: keep polling until the code expires
        await sleep(max(0.0, min(interval, deadline - clock())))
    return Err(_expired("the device code expired (timeout) before the login was approved"))


def _expired(what: str) -> HubAuthError:
    return HubAuthError(ErrorKind.EXPIRED, f"{what}; start a new login")


def _read_token_answer(
    answered: Result[tuple[int, dict[str, object]]],
) -> TokenGrant | HubAuthError | tuple[str, str] | None:
    """A token, a final error, an OAuth ``(error, description)``, or ``None`` (transient).

    Every ``Err`` of ``post_oauth_form`` is transient here: network, timeout, 5xx, a body
    that is not a JSON object (a proxy's error page).
    """
    if isinstance(answered, Err):
        logger.debug("device login poll failed, will poll again: %s", answered.error.kind)
        return None
    status, data = answered.value
    if status >= 500 or status == 429:
        logger.debug("device login poll answered %s, will poll again", status)
        return None
    if "access_token" in data:
        return _token_grant(data, status)
    error = data.get("error")
    if not isinstance(error, str) or not error:
        return None
    description = data.get("error_description")
    return error, description if isinstance(description, str) else ""


def _token_grant(data: Mapping[str, object], status: int) -> TokenGrant | HubAuthError:
    access_token = data.get("access_token")
    refresh_token = data.get("refresh_token")
    if not isinstance(access_token, str) or check_format(access_token) is not None:
        return HubAuthError(
            ErrorKind.BAD_RESPONSE,
            "the Hub's token answer holds no usable access token",
            status=status,
        )
    if refresh_token is not None and (
        not isinstance(refresh_token, str) or _REFRESH_TOKEN.fullmatch(refresh_token) is None
    ):
        return HubAuthError(
            ErrorKind.BAD_RESPONSE,
            "the Hub's token answer holds a malformed refresh token",
            status=status,
        )
    expires_in = token_lifetime(data.get("expires_in"), 0.0)
    return TokenGrant(
        access_token=MaskedStr(access_token),
        refresh_token=MaskedStr(refresh_token) if refresh_token else None,
        expires_in=int(expires_in) if expires_in >= 1 else None,
    )


def _start_error(status: int, data: Mapping[str, object]) -> HubAuthError:
    error = data.get("error")
    description = data.get("error_description")
    hub_text = ""
    if isinstance(error, str):
        said = f"{error} - {description}" if isinstance(description, str) else error
        hub_text = ": " + scrub(said)[:300]
    if status == 404:
        kind, summary = ErrorKind.NOT_FOUND, "the Hub has no device login endpoint"
        hub_text = " (check HF_ENDPOINT)"
    elif status == 429:
        kind, summary = ErrorKind.RATE_LIMITED, "the Hub is rate limiting this client"
    elif status >= 500:
        kind, summary = ErrorKind.SERVER_ERROR, "the Hub had an internal error"
    else:
        kind, summary = ErrorKind.BAD_RESPONSE, "the Hub refused the device login request"
    return HubAuthError(kind, summary + hub_text, status=status)


def _positive(value: object, default: float) -> float:
    """A positive, finite number of seconds from a JSON value, else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    number = float(value)
    return number if math.isfinite(number) and number > 0 else default
