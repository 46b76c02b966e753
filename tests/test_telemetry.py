"""OpenTelemetry spans and metrics, recorded by the SDK's in-memory exporter and reader.

Each test gets its own SDK providers through ``_telemetry.use_providers`` (the API's global
providers can be set once per process, so no test sets them; test_telemetry_process.py does,
in a process of its own). Every test ends by scanning what was recorded for tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, MemoryCache, Ok
from hub_auth import _telemetry as names
from hub_auth._login.store import TokenStore
from hub_auth.testing import FakeHub, FakeUser, make_token
from tests.manual_clock import ManualClock
from tests.oauth_browser import Browser, make_app
from tests.secret_guard import find_tokens

TOKEN = make_token("telemetry")
OTHER = make_token("telemetry-other")
UNKNOWN = make_token("unknown")


@dataclass
class Recorded:
    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = self.spans_exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) of every data point of metric ``name`` (a sum's value, a
        histogram's count, a gauge's value)."""
        found = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[attr-defined]
                        found.append((dict(point.attributes or {}), value))
        return found

    def count(self, name: str, **attributes: Any) -> Any:
        return sum(
            value
            for found, value in self.points(name)
            if all(found.get(key) == want for key, want in attributes.items())
        )

    def everything(self) -> str:
        """Every name, attribute and event of every span and metric point, as text."""
        parts = []
        for span in self.spans():
            parts.append(span.name)
            parts.extend(f"{key}={value!r}" for key, value in (span.attributes or {}).items())
            for event in span.events:
                parts.append(event.name)
                parts.extend(f"{k}={v!r}" for k, v in (event.attributes or {}).items())
            parts.append(str(span.status.description))
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        parts.append(f"{metric.name} {dict(point.attributes or {})!r}")
        return "\n".join(parts)


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    undo = names.use_providers(tracer_provider, meter_provider)
    found = Recorded(exporter, reader)
    yield found
    undo()
    # Nothing recorded may hold a token (nor the hash a cache keys it by).
    text = found.everything()
    assert find_tokens(text) == []
    for token in (TOKEN, OTHER, UNKNOWN):
        assert token not in text
        assert token[-8:] not in text
        assert hashlib.sha256(token.encode()).hexdigest() not in text
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
    hub.add_token(OTHER, FakeUser(name="grace-hopper"))
    return hub


@pytest.fixture
def cache(clock: ManualClock) -> MemoryCache:
    return MemoryCache(ttl=60.0, stale_ttl=600.0, clock=clock)


@pytest.fixture
async def cached(hub: FakeHub, hf_home: Path, cache: MemoryCache) -> Any:
    async with HubAuth(endpoint=hub.url, cache=cache, max_attempts=1) as client:
        yield client


def test_without_providers_the_gate_is_closed(hub: FakeHub) -> None:
    # The SDK is imported in this process, but no provider was set: the API's own proxy
    # providers do not count.
    names.refresh()
    assert names.on is False


async def test_a_miss_then_a_hit(cached: HubAuth, recorded: Recorded, hub: FakeHub) -> None:
    assert (await cached.whoami(TOKEN)).unwrap().username == "ada-lovelace"
    assert (await cached.whoami(TOKEN)).unwrap().username == "ada-lovelace"

    miss, hit = recorded.spans(names.WHOAMI)
    assert miss.attributes == {"server.address": "127.0.0.1", "hub_auth.cache": "miss"}
    assert hit.attributes == {"server.address": "127.0.0.1", "hub_auth.cache": "hit"}
    assert hit.status.status_code is StatusCode.UNSET
    (request,) = recorded.spans(names.HUB_REQUEST)
    assert request.parent is not None
    assert request.parent.span_id == miss.context.span_id  # the miss's request is its child
    attributes = dict(request.attributes or {})
    assert attributes.pop("http.response.header.x-request-id") == (hub.requests[-1].request_id,)
    assert attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": hub.port,
        "url.path": "/api/whoami-v2",
    }
    assert recorded.count(names.WHOAMI_CALLS, outcome="ok", cache="miss") == 1
    assert recorded.count(names.WHOAMI_CALLS, outcome="ok", cache="hit") == 1
    assert recorded.points(names.HUB_REQUEST_DURATION) == [
        ({"status": "200", "server.address": "127.0.0.1"}, 1)
    ]
    # Every MemoryCache alive in the process, summed: this one's new entry adds one.
    before = recorded.count(names.CACHE_ENTRIES, **{"cache.kind": "MemoryCache"})
    await cached.whoami(OTHER)
    assert recorded.count(names.CACHE_ENTRIES, **{"cache.kind": "MemoryCache"}) == before + 1


async def test_errors_carry_their_kind(
    auth: HubAuth, recorded: Recorded, hub: FakeHub, hf_home: Path
) -> None:
    assert isinstance(await auth.whoami(UNKNOWN), Err)
    assert isinstance(await auth.whoami("not a token"), Err)  # refused before any request
    unauthorized, invalid = recorded.spans(names.WHOAMI)
    assert unauthorized.attributes == {
        "server.address": "127.0.0.1",
        "hub_auth.cache": "none",
        "hub_auth.error.kind": "unauthorized",
    }
    assert unauthorized.status.status_code is StatusCode.ERROR
    assert invalid.attributes is not None
    assert invalid.attributes["hub_auth.error.kind"] == "invalid_token"
    (request,) = recorded.spans(names.HUB_REQUEST)
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 401
    assert request.attributes["error.type"] == "401"
    assert recorded.count(names.WHOAMI_CALLS, outcome="unauthorized", cache="none") == 1
    assert recorded.count(names.WHOAMI_CALLS, outcome="invalid_token", cache="none") == 1

    # No answer at all: the request's status is the cause.
    async with HubAuth(endpoint="http://127.0.0.1:9", max_attempts=1, read_env=False) as down:
        result = await down.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NETWORK
    request = recorded.spans(names.HUB_REQUEST)[-1]
    assert request.attributes is not None
    assert request.attributes["error.type"] == "network"
    assert "http.response.status_code" not in request.attributes
    assert recorded.count(names.HUB_REQUEST_DURATION, status="network") == 1
    assert recorded.count(names.WHOAMI_CALLS, outcome="network") == 1


async def test_stale_answers_are_told_apart(
    cached: HubAuth, recorded: Recorded, hub: FakeHub, clock: ManualClock
) -> None:
    assert isinstance(await cached.whoami(TOKEN), Ok)
    clock.advance(120)  # past the ttl, within the stale window
    hub.fail_next(503)
    assert (await cached.whoami(TOKEN)).unwrap().username == "ada-lovelace"
    assert [attr(span, "hub_auth.cache") for span in recorded.spans(names.WHOAMI)] == [
        "miss",
        "stale",
    ]
    assert recorded.count(names.WHOAMI_CALLS, outcome="ok", cache="stale") == 1
    assert recorded.count(names.HUB_REQUEST_DURATION, status="503") == 1


async def test_concurrent_callers_wait_for_one_request(
    cached: HubAuth, recorded: Recorded, hub: FakeHub
) -> None:
    hub.delay_next(0.05)
    results = await asyncio.gather(*(cached.whoami(TOKEN) for _ in range(5)))
    assert all(isinstance(result, Ok) for result in results)
    assert hub.request_count == 1
    outcomes = sorted(attr(span, "hub_auth.cache") for span in recorded.spans(names.WHOAMI))
    assert outcomes == ["miss", "wait", "wait", "wait", "wait"]
    assert recorded.count(names.WHOAMI_CALLS, cache="wait") == 4
    # Once answered, the same token is a hit.
    await cached.whoami(TOKEN)
    assert attr(recorded.spans(names.WHOAMI)[-1], "hub_auth.cache") == "hit"


async def test_a_rate_limit_backoff_is_a_gauge(
    cached: HubAuth, recorded: Recorded, hub: FakeHub
) -> None:
    hub.rate_limit_next(retry_after=30)
    result = await cached.whoami(TOKEN)
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.RATE_LIMITED
    this_hub = {"server.address": "127.0.0.1", "server.port": hub.port}
    (seconds,) = [
        value for found, value in recorded.points(names.BACKOFF_ACTIVE) if found == this_hub
    ]
    assert 25 < seconds <= 30
    # A miss while backing off makes no request, and says so.
    assert isinstance(await cached.whoami(OTHER), Err)
    assert hub.request_count == 1
    assert recorded.count(names.WHOAMI_CALLS, outcome="rate_limited", cache="miss") == 2


def test_a_fast_path_hit_is_recorded_from_sync_code(recorded: Recorded) -> None:
    names.record_whoami("huggingface.co", Ok(None), "hit")
    rejected = HubAuthError(ErrorKind.UNAUTHORIZED, "rejected")
    names.record_whoami("huggingface.co", Err(rejected), "hit")
    hit, refused = recorded.spans(names.WHOAMI)
    assert hit.attributes == {"server.address": "huggingface.co", "hub_auth.cache": "hit"}
    assert refused.status.status_code is StatusCode.ERROR
    assert attr(refused, "hub_auth.error.kind") == "unauthorized"
    assert recorded.points(names.WHOAMI_CALLS) == [
        ({"outcome": "ok", "cache": "hit", "server.address": "huggingface.co"}, 1),
        ({"outcome": "unauthorized", "cache": "hit", "server.address": "huggingface.co"}, 1),
    ]


# -- flows -------------------------------------------------------------------------------------


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def children(recorded: Recorded, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        span
        for span in recorded.spans(names.HUB_REQUEST)
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


async def test_device_login_spans(auth: HubAuth, recorded: Recorded, hub: FakeHub) -> None:
    hub.oauth.device_interval = 0.01
    device = (await auth.start_device_login()).unwrap()
    hub.oauth.approve(device.user_code, name="ada-lovelace")
    assert isinstance(await auth.complete_device_login(device), Ok)
    (start,) = recorded.spans(names.DEVICE_LOGIN_START)
    (poll,) = recorded.spans(names.DEVICE_LOGIN_POLL)
    assert [attr(span, "url.path") for span in children(recorded, start)] == ["/oauth/device"]
    assert [attr(span, "url.path") for span in children(recorded, poll)][-1] == "/oauth/token"
    assert poll.status.status_code is not StatusCode.ERROR

    denied = (await auth.start_device_login()).unwrap()
    hub.oauth.deny(denied.user_code)
    assert isinstance(await auth.complete_device_login(denied), Err)
    text = recorded.everything()
    for code in (device, denied):
        assert code.device_code.get_secret_value() not in text
    failed = recorded.spans(names.DEVICE_LOGIN_POLL)[-1]
    assert failed.attributes == {"hub_auth.error.kind": "access_denied"}
    assert failed.status.status_code is StatusCode.ERROR


async def test_oidc_exchange_span(hub: FakeHub, hf_home: Path, recorded: Recorded) -> None:
    id_token = hub.oauth.mint_id_token(resources=["ada-lovelace/model"])
    async with HubAuth(endpoint=hub.url, read_env=False) as auth:
        assert isinstance(
            await auth.exchange_oidc_token("ada-lovelace/model", id_token=id_token), Ok
        )
    (exchange,) = recorded.spans(names.OIDC_EXCHANGE)
    assert [attr(span, "url.path") for span in children(recorded, exchange)] == ["/oauth/token"]
    assert id_token not in recorded.everything()


async def test_stored_login_refresh_span(
    fake_hub: FakeHub, store: TokenStore, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", raising=False)
    answer = fake_hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=60)
    store.save(
        "oauth-ada",
        answer["access_token"],
        extra={
            "refresh_token": answer["refresh_token"],
            "expires_at": str(int(time.time()) + answer["expires_in"]),
            "hub_auth_endpoint": fake_hub.url,
        },
    ).unwrap()
    async with HubAuth(endpoint=fake_hub.url) as auth:
        assert (await auth.whoami()).unwrap().username == "ada"
    (refresh,) = recorded.spans(names.TOKEN_REFRESH)
    assert refresh.status.status_code is not StatusCode.ERROR
    paths = [attr(span, "url.path") for span in recorded.spans(names.HUB_REQUEST)]
    assert paths == ["/oauth/token", "/api/whoami-v2"]
    text = recorded.everything()
    assert answer["refresh_token"] not in text
    assert answer["access_token"] not in text


@pytest.mark.usefixtures("close_oauth_clients")
async def test_sign_in_and_session_refresh_spans(hub: FakeHub, recorded: Recorded) -> None:
    from hub_auth.fastapi import HubOAuth

    hub.oauth.browser_user = FakeUser(name="ada-lovelace")
    hub.oauth.access_token_lifetime = 60.0
    app = hub.oauth.register_app(client_secret="s3cret", scopes=["read-memberships"])
    oauth = HubOAuth(
        client_id=app.client_id,
        client_secret="s3cret",
        scopes="openid profile",
        provider_url=hub.url,
        refresh_margin=120.0,  # every session is due for a refresh at once
    )
    async with Browser(make_app(oauth), hub) as browser:
        await browser.sign_in()
        assert (await browser.client.get("/me")).status_code == 200
    (sign_in,) = recorded.spans(names.SIGN_IN)
    assert sign_in.attributes == {"http.response.status_code": 302}
    paths = [attr(span, "url.path") for span in children(recorded, sign_in)]
    assert "/oauth/token" in paths
    refreshes = recorded.spans(names.SESSION_REFRESH)
    assert refreshes
    assert [attr(span, "url.path") for span in children(recorded, refreshes[0])] == ["/oauth/token"]
    assert not any(secret in recorded.everything() for secret in hub.oauth._refresh_tokens)


async def test_metrics_without_traces(hub: FakeHub, hf_home: Path) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    undo = names.use_providers(meter_provider=meter_provider)
    try:
        async with HubAuth(endpoint=hub.url, cache=MemoryCache()) as auth:
            for _ in range(3):
                assert isinstance(await auth.whoami(TOKEN), Ok)
    finally:
        undo()
    recorded = Recorded(InMemorySpanExporter(), reader)
    assert recorded.count(names.WHOAMI_CALLS, cache="miss") == 1
    assert recorded.count(names.WHOAMI_CALLS, cache="hit") == 2
    assert recorded.count(names.HUB_REQUEST_DURATION, status="200") == 1
    meter_provider.shutdown()
