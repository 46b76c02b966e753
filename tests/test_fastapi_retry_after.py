"""HubBearer's 503 always carries ``Retry-After``: the Hub's wait, else a configurable default."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hub_auth import HubAuth, UserInfo
from hub_auth.fastapi import DEFAULT_RETRY_AFTER, HubBearer
from hub_auth.testing import FakeHub, make_token

ADA = make_token("retry-after-ada")
HEADERS = {"Authorization": f"Bearer {ADA}"}


def make_app(endpoint: str, bearer: HubBearer, **options: Any) -> FastAPI:
    # Depends(...) as a default: with postponed annotations FastAPI cannot see a local
    # dependency inside Annotated[...].
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # max_attempts=1: each fault reaches HubBearer instead of being retried away.
        async with HubAuth(endpoint=endpoint, read_env=False, max_attempts=1, **options) as auth:
            app.state.hub_auth = auth
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(user: UserInfo = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"username": user.username}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: UserInfo = Depends(bearer)) -> None:  # noqa: B008
        await websocket.accept()
        await websocket.close()

    return app


@pytest.fixture
def hub(fake_hub: FakeHub) -> Iterator[FakeHub]:
    fake_hub.add_token(ADA, name="ada")
    yield fake_hub


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def retry_after(app: FastAPI) -> str | None:
    with TestClient(app) as client:
        response = client.get("/me", headers=HEADERS)
    assert response.status_code == 503
    assert ADA not in response.text
    return response.headers.get("Retry-After")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda hub: hub.fail_next(503, headers={"Retry-After": "7"}), "7"),
        (lambda hub: hub.fail_next(503, headers={"Retry-After": "2.2"}), "3"),
        (lambda hub: hub.rate_limit_next(retry_after=0.1), "1"),
        (lambda hub: hub.fail_next(500), "5"),
        (lambda hub: hub.fail_next(502), "5"),
        (lambda hub: hub.fail_next(503), "5"),
        (lambda hub: hub.malformed_next(), "5"),
    ],
    ids=["hub-7s", "hub-ceil", "hub-below-1s", "500", "502", "503-no-header", "not-json"],
)
def test_hub_answers(hub: FakeHub, fault: Callable[[FakeHub], None], expected: str) -> None:
    fault(hub)
    assert retry_after(make_app(hub.url, HubBearer())) == expected


def test_network_error_gets_the_default() -> None:
    assert DEFAULT_RETRY_AFTER == 5.0
    assert retry_after(make_app(closed_port_url(), HubBearer())) == "5"


def test_timeout_gets_the_configured_default(hub: FakeHub) -> None:
    hub.delay_next(3.0)
    app = make_app(hub.url, HubBearer(retry_after_default=12), timeout=0.3)
    assert retry_after(app) == "12"


def test_default_is_rounded_up_and_the_hubs_value_wins(hub: FakeHub) -> None:
    assert retry_after(make_app(closed_port_url(), HubBearer(retry_after_default=0.3))) == "1"
    hub.fail_next(503, headers={"Retry-After": "9"})
    assert retry_after(make_app(hub.url, HubBearer(retry_after_default=60))) == "9"


def test_websocket_close_reason_says_when() -> None:
    with (
        TestClient(make_app(closed_port_url(), HubBearer())) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws", headers=HEADERS),
    ):
        pass
    assert closed.value.code == 1013
    assert closed.value.reason.endswith("try again later (in 5s)")


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), True, "5"])
def test_bad_default_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="retry_after_default"):
        HubBearer(retry_after_default=value)
