"""HubClient's error mapping as unit tests with aioresponses (no server at all).

The integration tests use FakeHub over real sockets; these pin the mapping of each status
and each aiohttp exception without one.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses_compat import CompatResponse
from yarl import URL

from hub_auth import Err, ErrorKind, HubAuth, Ok
from hub_auth.testing import make_token

ENDPOINT = "https://hub.example"
URL_WHOAMI = f"{ENDPOINT}/api/whoami-v2"
TOKEN = make_token("unit")


@pytest.fixture
def hub() -> Iterator[aioresponses]:
    with aioresponses() as mocked:
        yield mocked


def reply(hub: aioresponses, status: int = 200, **kwargs: object) -> None:
    hub.get(URL_WHOAMI, status=status, response_class=CompatResponse, **kwargs)  # type: ignore[arg-type]


async def test_ok_sends_the_bearer_header(hub: aioresponses) -> None:
    reply(hub, payload={"name": "ada", "orgs": [{"name": "lab"}]})
    async with HubAuth(endpoint=ENDPOINT, read_env=False) as auth:
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Ok)
    assert result.value.organizations == ("lab",)
    (call,) = hub.requests[("GET", URL(URL_WHOAMI))]
    assert call.kwargs["headers"]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ErrorKind.UNAUTHORIZED),
        (403, ErrorKind.FORBIDDEN),
        (404, ErrorKind.NOT_FOUND),
        (500, ErrorKind.SERVER_ERROR),
        (418, ErrorKind.BAD_RESPONSE),
    ],
)
async def test_status_mapping_keeps_hub_text_and_request_id(
    hub: aioresponses, status: int, kind: ErrorKind
) -> None:
    reply(
        hub,
        status,
        payload={"error": "nope from the Hub"},
        headers={"X-Request-Id": "req-42"},
    )
    async with HubAuth(endpoint=ENDPOINT, read_env=False) as auth:
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is kind
    assert result.error.status == status
    assert result.error.request_id == "req-42"
    assert "nope from the Hub" in result.error.message


async def test_rate_limit_reads_ratelimit_reset(hub: aioresponses) -> None:
    reply(hub, 429, headers={"RateLimit": '"api";r=0;t=97'})
    async with HubAuth(endpoint=ENDPOINT, read_env=False, max_attempts=1) as auth:
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.RATE_LIMITED
    assert result.error.retry_after == 97


async def test_503_then_ok_is_retried(hub: aioresponses) -> None:
    reply(hub, 503, headers={"Retry-After": "0"})
    reply(hub, payload={"name": "ada"})
    async with HubAuth(endpoint=ENDPOINT, read_env=False) as auth:
        result = await auth.whoami(TOKEN)
    assert result.unwrap().username == "ada"


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (aiohttp.ClientConnectionError("connection refused"), ErrorKind.NETWORK),
        (aiohttp.ServerDisconnectedError(), ErrorKind.NETWORK),
        (TimeoutError(), ErrorKind.TIMEOUT),
    ],
)
async def test_exceptions_become_errors(
    hub: aioresponses, exception: Exception, kind: ErrorKind
) -> None:
    hub.get(URL_WHOAMI, exception=exception, repeat=True)
    async with HubAuth(endpoint=ENDPOINT, read_env=False, retry_budget=0.5) as auth:
        result = await auth.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is kind
