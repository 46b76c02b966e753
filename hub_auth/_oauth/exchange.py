"""OIDC token exchange in CI ("Trusted Publishers"), as huggingface_hub (>= 1.19) does it.

A CI job proves who it is with a short-lived OIDC id token minted by its CI provider and
exchanges it at ``POST {endpoint}/oauth/token`` (RFC 8693, a JSON body, no client
authentication) for a short-lived Hub token scoped to one repo or user: no long-lived
``HF_TOKEN`` secret in the CI's settings.

- Turned on by ``HF_OIDC_RESOURCE`` (``ns/name``, ``datasets/ns/name``, ``spaces/...``, or a
  bare username). Then every call that resolves a token uses the exchanged one, above
  ``HF_TOKEN`` and the token file; a token passed explicitly (argument, ``set_token``, the
  constructor) still wins. ``read_env=False`` ignores it.
- The id token: ``HF_OIDC_ID_TOKEN`` (any provider: GitLab, CircleCI, Bitbucket), else, on
  GitHub Actions (``GITHUB_ACTIONS=true``), ``GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=
  <endpoint>`` with ``Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (JSON ``value``).
- The exchanged token is kept in memory only, per (endpoint, resource, id token source), and
  shared by concurrent callers (one exchange). A GitHub-minted one is exchanged again 300 s
  before it expires; one from a given id token (``HF_OIDC_ID_TOKEN``) is kept for its whole
  lifetime, as huggingface_hub does: that id token cannot be re-minted and has likely expired
  by then.
- A failure is an ``Err`` that says what to fix, never a silent fall-back to ``HF_TOKEN``.

This module imports neither aiohttp nor pydantic; the requests go through
``HubClient.request``. ``HF_OIDC_RESOURCE`` is read by ``hub_auth._settings.oidc_resource``
(re-exported here), so ``hub-auth token`` need not import this module.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub_auth import _telemetry
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._logging import LOGGER_NAME
from hub_auth._oauth import ID_TOKEN_TYPE, OIDC_REEXCHANGE_MARGIN, TOKEN_EXCHANGE_GRANT, TOKEN_PATH
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import OIDC_RESOURCE_ENV, oidc_resource
from hub_auth._tokens import MaskedStr, check_format, clean_token, scrub

if TYPE_CHECKING:
    from hub_auth._http import HubClient, RawAnswer

__all__ = ["OIDC_ID_TOKEN_ENV", "OIDC_RESOURCE_ENV", "OidcExchanger", "oidc_resource"]

logger = logging.getLogger(LOGGER_NAME)

OIDC_ID_TOKEN_ENV: Final = "HF_OIDC_ID_TOKEN"
DEFAULT_EXPIRES_IN: Final = 3600
_MAX_EXPIRES_IN: Final = 365 * 86400
_PERMISSION_ADVICE: Final = (
    "make sure the workflow job sets `permissions: id-token: write` (GitHub sets "
    "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN only then)"
)
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_GITHUB: Final = "github"


def _said(text: str) -> str:
    """Text from a server, made safe to quote: no token, no id token, printable, short."""
    return _UNPRINTABLE.sub("?", scrub(_JWT_SHAPE.sub("<id token>", text)))[:200]


@dataclass(frozen=True)
class _Exchanged:
    token: MaskedStr
    fresh_until: float  # time.monotonic() from which it is exchanged again


_Key = tuple[str, str, str]  # endpoint, resource, id token source ("github" or a digest)


class OidcExchanger:
    """Exchanges CI id tokens for Hub tokens at one endpoint; caches and shares the results."""

    def __init__(self, client: HubClient, endpoint: str) -> None:
        self._client = client
        self._endpoint = endpoint
        self._exchanged: dict[_Key, _Exchanged] = {}
        self._in_flight: dict[_Key, asyncio.Future[Result[str]]] = {}

    async def token(
        self, resource: str, *, id_token: str | None, environ: Mapping[str, str]
    ) -> Result[str]:
        """The Hub token for ``resource``: cached, or exchanged for ``id_token`` (else the
        environment's: ``HF_OIDC_ID_TOKEN``, then GitHub Actions)."""
        resource = resource.strip()
        if id_token is None:
            id_token = clean_token(environ.get(OIDC_ID_TOKEN_ENV))
        if id_token is not None:
            source = hashlib.sha256(id_token.encode()).hexdigest()
            given = MaskedStr(id_token)

            async def mint() -> Result[str]:
                return Ok(given)
        elif environ.get("GITHUB_ACTIONS") == "true":
            source = _GITHUB

            async def mint() -> Result[str]:
                return await self._github_id_token(environ)
        else:
            return Err(
                HubAuthError(
                    ErrorKind.NO_TOKEN,
                    f"{OIDC_RESOURCE_ENV} is set but no OIDC id token is available: not running "
                    f"in GitHub Actions and {OIDC_ID_TOKEN_ENV} is not set. Set "
                    f"{OIDC_ID_TOKEN_ENV} to the id token your CI provider mints, or unset "
                    f"{OIDC_RESOURCE_ENV}",
                )
            )
        key = (self._endpoint, resource, source)
        cached = self._exchanged.get(key)
        if cached is not None and time.monotonic() < cached.fresh_until:
            return Ok(cached.token)
        margin = OIDC_REEXCHANGE_MARGIN if source == _GITHUB else 0.0
        with _telemetry.flow(_telemetry.OIDC_EXCHANGE) as traced:
            return traced.result(
                await self._shared(key, lambda: self._mint_and_exchange(key, mint, margin))
            )

    async def _shared(
        self, key: _Key, start: Callable[[], Coroutine[Any, Any, Result[str]]]
    ) -> Result[str]:
        """Concurrent callers for ``key`` share one exchange (a task that a cancelled caller
        does not cancel); each gets its own copy of an error."""
        pending = self._in_flight.get(key)
        # A future of another loop (the parent's, after os.fork()) can never be awaited here.
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = asyncio.ensure_future(start())
            self._in_flight[key] = pending

            def forget(done: asyncio.Future[Result[str]]) -> None:
                if self._in_flight.get(key) is done:
                    del self._in_flight[key]

            pending.add_done_callback(forget)
        outcome = await asyncio.shield(pending)
        if isinstance(outcome, Err):
            return Err(copy.copy(outcome.error))
        return outcome

    async def _mint_and_exchange(
        self,
        key: _Key,
        mint: Callable[[], Coroutine[Any, Any, Result[str]]],
        margin: float,
    ) -> Result[str]:
        minted = await mint()
        if isinstance(minted, Err):
            return minted
        started = time.monotonic()
        exchanged = await self._exchange(minted.value, key[1])
        if isinstance(exchanged, Err):
            return exchanged
        token, expires_in = exchanged.value
        now = time.monotonic()
        # Expired entries go when a new one comes: the table stays as small as its keys.
        for stale in [k for k, v in self._exchanged.items() if v.fresh_until <= now]:
            del self._exchanged[stale]
        self._exchanged[key] = _Exchanged(token, started + max(expires_in - margin, 0.0))
        logger.info(
            "exchanged the CI's OIDC id token for a Hub token scoped to %s (expires in %ds)",
            key[1],
            expires_in,
        )
        return Ok(token)

    async def _github_id_token(self, environ: Mapping[str, str]) -> Result[str]:
        """Mint an id token from GitHub Actions, with the endpoint as its audience."""
        url = environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "").strip()
        request_token = clean_token(environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
        if not url or request_token is None:
            return Err(
                HubAuthError(
                    ErrorKind.NO_TOKEN,
                    f"{OIDC_RESOURCE_ENV} is set but GitHub Actions cannot mint an OIDC id "
                    f"token: {_PERMISSION_ADVICE}",
                )
            )
        answer = await self._client.request(
            "GET",
            url,
            headers={"Authorization": MaskedStr(f"Bearer {request_token}")},
            # huggingface_hub's audience: the endpoint (HF_ENDPOINT), which checks the id token.
            params={"audience": self._endpoint},
        )
        if isinstance(answer, Err):
            return Err(_prefixed("GitHub Actions' id-token service", answer.error))
        status, body = answer.value.status, answer.value.body
        if status in (401, 403):
            return Err(
                HubAuthError(
                    ErrorKind.FORBIDDEN,
                    f"GitHub Actions refused to mint an OIDC id token: {_PERMISSION_ADVICE}",
                    status=status,
                )
            )
        if status != 200:
            kind = ErrorKind.SERVER_ERROR if status >= 500 else ErrorKind.BAD_RESPONSE
            return Err(
                HubAuthError(
                    kind,
                    "GitHub Actions' id-token service answered with an unexpected status",
                    status=status,
                )
            )
        value = _json_object(body).get("value")
        if not isinstance(value, str) or not value:
            return Err(
                HubAuthError(
                    ErrorKind.BAD_RESPONSE,
                    "GitHub Actions' id-token service answered without an id token ('value')",
                    status=status,
                )
            )
        return Ok(MaskedStr(value))

    async def _exchange(self, id_token: str, resource: str) -> Result[tuple[MaskedStr, int]]:
        """``POST /oauth/token`` (token exchange): the Hub token and its ``expires_in``."""
        answer = await self._client.request(
            "POST",
            self._endpoint + TOKEN_PATH,
            json_body={
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token_type": ID_TOKEN_TYPE,
                "subject_token": MaskedStr(id_token),
                "resource": resource,
            },
        )
        if isinstance(answer, Err):
            return Err(_prefixed("the OIDC token exchange", answer.error))
        if answer.value.status != 200:
            return Err(self._refusal(answer.value, resource))
        return _parse_exchange(answer.value)

    def _refusal(self, answer: RawAnswer, resource: str) -> HubAuthError:
        status, request_id = answer.status, answer.request_id
        parsed = _json_object(answer.body)
        error = parsed.get("error")
        description = parsed.get("error_description")
        said = ": ".join(_said(part) for part in (error, description) if isinstance(part, str))
        said = f" ({said})" if said else ""
        if status == 429:
            return HubAuthError(
                ErrorKind.RATE_LIMITED,
                f"the Hub is rate limiting the OIDC token exchange{said}",
                status=status,
                request_id=request_id,
            )
        if status >= 500:
            return HubAuthError(
                ErrorKind.SERVER_ERROR,
                f"the Hub had an internal error during the OIDC token exchange{said}",
                status=status,
                request_id=request_id,
            )
        if status == 404 and not said:
            return HubAuthError(
                ErrorKind.NOT_FOUND,
                f"{self._endpoint} has no OIDC token exchange (check HF_ENDPOINT)",
                status=status,
                request_id=request_id,
            )
        return HubAuthError(
            ErrorKind.UNAUTHORIZED,
            f"the Hub refused to exchange the OIDC id token for a token of {_said(resource)!r}"
            f"{said}: check the Trusted Publisher settings of {_said(resource)} on the Hub "
            f"(repository, workflow, environment) and that the id token's audience is "
            f"{self._endpoint}",
            status=status,
            request_id=request_id,
        )


def _prefixed(what: str, error: HubAuthError) -> HubAuthError:
    return HubAuthError(
        error.kind,
        f"{what} failed: {error.message}",
        status=error.status,
        request_id=error.request_id,
        retry_after=error.retry_after,
    )


def _json_object(body: bytes) -> dict[str, object]:
    """The JSON object in ``body``, or ``{}`` for anything else (never raises)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _parse_exchange(answer: RawAnswer) -> Result[tuple[MaskedStr, int]]:
    """``access_token`` (a Hub token) and ``expires_in`` (default 3600) of a 200 answer."""
    parsed = _json_object(answer.body)
    token = parsed.get("access_token")
    expires_in = parsed.get("expires_in", DEFAULT_EXPIRES_IN)
    if not isinstance(token, str) or check_format(token) is not None:
        problem = "no usable access_token"
    elif (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not math.isfinite(expires_in)
        or expires_in < 0
    ):
        problem = "an invalid expires_in"
    else:
        # Capped: a huge number must not overflow the cache's clock arithmetic.
        return Ok((MaskedStr(token), int(min(expires_in, _MAX_EXPIRES_IN))))
    return Err(
        HubAuthError(
            ErrorKind.BAD_RESPONSE,
            f"the Hub's OIDC token exchange answer has {problem}",
            status=answer.status,
            request_id=answer.request_id,
        )
    )
