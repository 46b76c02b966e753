"""HubBearer in FastAPI apps: every status path, the lifespan pattern, the example, uvicorn."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

import hub_auth._rules
from hub_auth import HubAuth, MemoryCache, UserInfo
from hub_auth._rules import NO_TOKEN_DETAIL
from hub_auth.fastapi import HubBearer
from hub_auth.testing import FakeHub, FakeUser, make_token

ROOT = Path(__file__).resolve().parent.parent

ADA = make_token("ada")  # write token, orgs: engines, poets
BYRON = make_token("byron")  # read token, orgs: poets
FINE = make_token("fine")  # fine-grained token: repo.content.read on the user
OAUTH = make_token("oauth")  # no accessToken (OAuth-style)
ADMIN = make_token("admin")  # admin role
REVOKED = make_token("revoked")
REFUSED = make_token("refused")
UNKNOWN = make_token("unknown")
# Fine-grained tokens of members of "lab", with repo.write on different entities.
SELF_WRITE = make_token("selfwrite")  # on the user's own account only
LAB_WRITE = make_token("labwrite")  # on the org "lab" (member of lab and looms)
BOTH_WRITE = make_token("bothwrite")  # on "lab" and on "looms" (member of both)
GLOBAL_WRITE = make_token("globalwrite")  # global repo.write
TEAM_WRITE = make_token("teamwrite")  # on "models-team", an org the user is not in
ALL_TOKENS = (
    ADA,
    BYRON,
    FINE,
    OAUTH,
    ADMIN,
    REVOKED,
    REFUSED,
    UNKNOWN,
    SELF_WRITE,
    LAB_WRITE,
    BOTH_WRITE,
    GLOBAL_WRITE,
    TEAM_WRITE,
)


def fine_grained(*entities: str, user: str = "", global_: tuple[str, ...] = ()) -> dict[str, Any]:
    """A fine-grained ``accessToken.fineGrained`` with repo.write on each entity."""
    return {
        "canReadGatedRepos": False,
        "global": list(global_),
        "scoped": [
            {
                "entity": {
                    "_id": f"id-{name}",
                    "type": "user" if name == user else "org",
                    "name": name,
                },
                "permissions": ["repo.write", "repo.content.read"],
            }
            for name in entities
        ],
    }


def seed(hub: FakeHub) -> None:
    hub.add_token(ADA, FakeUser(name="ada", orgs=["engines", "poets"], role="write"))
    hub.add_token(BYRON, FakeUser(name="byron", orgs=["poets"], role="read"))
    hub.add_token(FINE, FakeUser(name="fine", role="fineGrained"))
    hub.add_token(OAUTH, FakeUser(name="oauth", token_name=None))
    hub.add_token(ADMIN, FakeUser(name="root", role="admin"))
    hub.add_token(REVOKED, FakeUser(name="gone"))
    hub.revoke(REVOKED)
    hub.add_token(REFUSED, FakeUser(name="refused"))
    hub.forbid(REFUSED, message="Your organization requires fine-grained tokens")
    for token, name, orgs, grants in [
        (SELF_WRITE, "selfish", ["lab"], fine_grained("selfish", user="selfish")),
        (LAB_WRITE, "labbie", ["lab", "looms"], fine_grained("lab")),
        (BOTH_WRITE, "weaver", ["lab", "looms"], fine_grained("lab", "looms")),
        (GLOBAL_WRITE, "globe", ["lab"], fine_grained(global_=("repo.write",))),
        (TEAM_WRITE, "teamer", ["lab"], fine_grained("models-team")),
    ]:
        user = FakeUser(name=name, orgs=orgs, role="fineGrained", fine_grained=grants)
        hub.add_token(token, user)


def user_json(user: UserInfo | None) -> dict[str, Any] | None:
    return None if user is None else {"username": user.username, "orgs": user.organizations}


def make_app(endpoint: str, *, cache: bool = True, **auth_options: Any) -> FastAPI:
    """An app with the lifespan pattern and one route per HubBearer configuration."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        options: dict[str, Any] = {"max_attempts": 1, "timeout": 2.0, **auth_options}
        async with HubAuth(
            endpoint=endpoint, cache=MemoryCache() if cache else None, **options
        ) as auth:
            app.state.hub_auth = auth
            yield

    app = FastAPI(lifespan=lifespan)
    routes: dict[str, HubBearer] = {
        "/me": HubBearer(),
        "/optional": HubBearer(auto_error=False),
        "/any-org": HubBearer(require_orgs=["engines", "looms"]),
        "/all-orgs": HubBearer(require_orgs=["engines", "poets"], require_all_orgs=True),
        "/write": HubBearer(require_role="write"),
        "/read": HubBearer(require_role="read"),
        "/perm-read": HubBearer(require_permissions=["repo.content.read"]),
        "/perm-write": HubBearer(require_permissions=["repo.content.write"]),
        "/repo-write": HubBearer(require_permissions=["repo.write"]),
        "/lab-write": HubBearer(require_orgs=["lab"], require_permissions=["repo.write"]),
        "/looms-or-lab-write": HubBearer(
            require_orgs=["looms", "lab"], require_permissions=["repo.write"]
        ),
        "/looms-and-lab-write": HubBearer(
            require_orgs=["looms", "lab"], require_all_orgs=True, require_permissions=["repo.write"]
        ),
        "/team-write": HubBearer(
            require_permissions=["repo.write"], permission_entity="models-team"
        ),
    }
    for path, bearer in routes.items():
        # A default, not Annotated: string annotations cannot see this loop's `bearer`.
        async def endpoint_(
            user: UserInfo | None = Depends(bearer),  # noqa: B008
        ) -> dict[str, Any] | None:
            return user_json(user)

        async def websocket_(
            websocket: WebSocket,
            user: UserInfo | None = Depends(bearer),  # noqa: B008
        ) -> None:
            await websocket.accept()
            await websocket.send_json(user_json(user))
            await websocket.close()

        app.get(path)(endpoint_)
        app.websocket("/ws" + path)(websocket_)
    return app


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    seed(fake_hub)
    return fake_hub


@pytest.fixture
def client(hub: FakeHub) -> Iterator[TestClient]:
    with TestClient(make_app(hub.url)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_no_token(response: httpx.Response) -> None:
    """Neither the body nor any header repeats a token."""
    everything = response.text + repr(dict(response.headers))
    for token in ALL_TOKENS:
        assert token not in everything
        assert token[3:] not in everything


# -- 200 ------------------------------------------------------------------------------------


def test_valid_token_returns_the_user(client: TestClient, hub: FakeHub) -> None:
    response = client.get("/me", headers=bearer(ADA))
    assert response.status_code == 200
    assert response.json() == {"username": "ada", "orgs": ["engines", "poets"]}
    # Lower-case scheme and extra spaces are accepted, and the cache answers the repeat.
    again = client.get("/me", headers={"authorization": f"bearer   {ADA}  "})
    assert again.status_code == 200
    assert hub.request_count == 1


# -- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": f"Basic {ADA}"},
        {"Authorization": ADA},
    ],
    ids=["none", "empty", "no-token", "blank-token", "basic", "no-scheme"],
)
def test_missing_or_malformed_header_is_401(
    client: TestClient, hub: FakeHub, headers: dict[str, str]
) -> None:
    response = client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_no_token(response)
    assert hub.request_count == 0


def test_no_token_says_how_to_send_one(client: TestClient) -> None:
    response = client.get("/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": NO_TOKEN_DETAIL}
    assert "'Authorization: Bearer hf_...'" in NO_TOKEN_DETAIL
    assert len(NO_TOKEN_DETAIL.encode()) <= 123  # fits a WebSocket close reason


@pytest.mark.parametrize(
    "token",
    ["not-a-hub-token", "api_org_abcdefghijklmnop", "hf_" + "x" * 5000, "hf_ab"],
    ids=["no-prefix", "org-token", "too-long", "too-short"],
)
def test_malformed_token_is_401_invalid_token_without_asking_the_hub(
    client: TestClient, hub: FakeHub, token: str
) -> None:
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert token not in response.text
    assert hub.request_count == 0


@pytest.mark.parametrize("token", [UNKNOWN, REVOKED], ids=["unknown", "revoked"])
def test_token_the_hub_rejects_is_401_invalid_token(
    client: TestClient, hub: FakeHub, token: str
) -> None:
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "rejected" in response.json()["detail"]
    assert_no_token(response)
    assert hub.request_count == 1


# -- auto_error=False -------------------------------------------------------------------------


def test_optional_auth(client: TestClient, hub: FakeHub) -> None:
    assert client.get("/optional").json() is None
    assert client.get("/optional", headers={"Authorization": "Basic abc"}).json() is None
    assert client.get("/optional", headers=bearer(ADA)).json()["username"] == "ada"
    # A bearer token that is present is still checked.
    rejected = client.get("/optional", headers=bearer(UNKNOWN))
    assert rejected.status_code == 401
    assert rejected.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# -- 403 ------------------------------------------------------------------------------------


def test_token_the_hub_refuses_is_403(client: TestClient) -> None:
    response = client.get("/me", headers=bearer(REFUSED))
    assert response.status_code == 403
    assert "fine-grained" in response.json()["detail"]
    assert_no_token(response)


def test_required_orgs_any(client: TestClient) -> None:
    assert client.get("/any-org", headers=bearer(ADA)).status_code == 200
    response = client.get("/any-org", headers=bearer(BYRON))
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "this resource requires membership of one of: engines, looms"
    )


def test_required_orgs_all(client: TestClient) -> None:
    assert client.get("/all-orgs", headers=bearer(ADA)).status_code == 200
    response = client.get("/all-orgs", headers=bearer(BYRON))
    assert response.status_code == 403
    assert "all of: engines, poets" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/write", ADA, 200),
        ("/write", ADMIN, 200),
        ("/write", BYRON, 403),
        ("/write", FINE, 403),
        ("/write", OAUTH, 403),
        ("/read", BYRON, 200),
        ("/read", FINE, 403),
    ],
)
def test_required_role(client: TestClient, path: str, token: str, status: int) -> None:
    response = client.get(path, headers=bearer(token))
    assert response.status_code == status
    if status == 403:
        assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
        assert "role" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/perm-read", FINE, 200),
        ("/perm-read", BYRON, 200),  # a classic read token grants every *.read
        ("/perm-read", ADA, 200),
        ("/perm-read", OAUTH, 403),
        ("/perm-write", FINE, 403),
        ("/perm-write", BYRON, 403),
        ("/perm-write", ADA, 200),
    ],
)
def test_required_permissions(client: TestClient, path: str, token: str, status: int) -> None:
    response = client.get(path, headers=bearer(token))
    assert response.status_code == status
    if status == 403:
        assert "lacks the permissions" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        # The reported hole: repo.write on one's own account does not grant it in "lab".
        ("/lab-write", SELF_WRITE, 403),
        ("/lab-write", LAB_WRITE, 200),
        ("/lab-write", GLOBAL_WRITE, 200),  # global permissions hold everywhere
        ("/lab-write", TEAM_WRITE, 403),
        ("/lab-write", ADA, 403),  # not a member
        # Any-of: one required org that admits the caller must grant the permission.
        ("/looms-or-lab-write", LAB_WRITE, 200),
        ("/looms-or-lab-write", SELF_WRITE, 403),
        # All-of: the permission must hold on every required org.
        ("/looms-and-lab-write", LAB_WRITE, 403),
        ("/looms-and-lab-write", BOTH_WRITE, 200),
        # No org: the permission must hold on the caller's own account.
        ("/repo-write", SELF_WRITE, 200),
        ("/repo-write", LAB_WRITE, 403),
        ("/repo-write", ADA, 200),  # a classic write token is not scoped
        # permission_entity names the entity.
        ("/team-write", TEAM_WRITE, 200),
        ("/team-write", LAB_WRITE, 403),
        ("/team-write", ADA, 200),
        ("/team-write", BYRON, 403),
    ],
)
def test_permissions_hold_on_the_entity_they_are_required_for(
    client: TestClient, path: str, token: str, status: int
) -> None:
    response = client.get(path, headers=bearer(token))
    assert response.status_code == status, response.text
    if status == 403 and "membership" not in response.text:
        assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
        assert "lacks the permissions on " in response.json()["detail"]


def test_permission_denial_names_the_entity(client: TestClient) -> None:
    response = client.get("/lab-write", headers=bearer(SELF_WRITE))
    assert response.json()["detail"] == "this token lacks the permissions on lab: repo.write"
    response = client.get("/looms-and-lab-write", headers=bearer(LAB_WRITE))
    assert response.json()["detail"] == "this token lacks the permissions on looms: repo.write"


# -- WebSocket routes -------------------------------------------------------------------------


def ws_refusal(client: TestClient, path: str, headers: dict[str, str]) -> WebSocketDisconnect:
    """Connect and expect the socket to be closed before it is accepted."""
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(path, headers=headers) as websocket,
    ):
        websocket.receive_json()
    for token in ALL_TOKENS:
        assert token not in closed.value.reason
    return closed.value


def test_websocket_with_a_valid_token(client: TestClient, hub: FakeHub) -> None:
    with client.websocket_connect("/ws/me", headers=bearer(ADA)) as websocket:
        assert websocket.receive_json() == {"username": "ada", "orgs": ["engines", "poets"]}
    with client.websocket_connect("/ws/optional") as websocket:
        assert websocket.receive_json() is None
    with client.websocket_connect("/ws/lab-write", headers=bearer(LAB_WRITE)) as websocket:
        assert websocket.receive_json()["username"] == "labbie"
    assert hub.request_count == 2


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/ws/me", {}, NO_TOKEN_DETAIL),
        ("/ws/me", {"Authorization": f"Basic {ADA}"}, "Authorization must be 'Bearer <token>'"),
        ("/ws/me", bearer(UNKNOWN), "invalid token: the Hub rejected it"),
        ("/ws/me", bearer("hf_ab"), "invalid token"),
        ("/ws/me", bearer(REFUSED), "fine-grained"),
        ("/ws/any-org", bearer(BYRON), "requires membership of one of: engines, looms"),
        ("/ws/write", bearer(BYRON), "'write' role"),
        ("/ws/lab-write", bearer(SELF_WRITE), "lacks the permissions on lab: repo.write"),
    ],
    ids=["none", "basic", "rejected", "malformed", "refused", "org", "role", "permission"],
)
def test_websocket_refusals_close_with_policy_violation(
    client: TestClient, path: str, headers: dict[str, str], reason: str
) -> None:
    closed = ws_refusal(client, path, headers)
    assert closed.code == 1008
    assert reason in closed.reason


def test_websocket_when_the_token_cannot_be_checked_closes_with_try_again_later(
    client: TestClient, hub: FakeHub
) -> None:
    hub.rate_limit_next(retry_after=30)
    closed = ws_refusal(client, "/ws/me", bearer(ADA))
    assert closed.code == 1013
    assert closed.reason == (
        "the token could not be checked right now (rate_limited); try again later (in 30s)"
    )
    hub.fail_next(500)
    closed = ws_refusal(client, "/ws/me", bearer(make_token()))
    assert closed.code == 1013  # still rate limited: not asked
    assert hub.request_count == 1


def test_websocket_close_reason_fits_a_control_frame(hub: FakeHub) -> None:
    orgs = [f"organisation-number-{index}" for index in range(12)]
    app = make_app(hub.url)
    bearer_dependency = HubBearer(require_orgs=orgs)

    @app.websocket("/ws/many")
    async def many(
        websocket: WebSocket,
        user: UserInfo = Depends(bearer_dependency),  # noqa: B008
    ) -> None:
        await websocket.accept()

    with TestClient(app) as client:
        closed = ws_refusal(client, "/ws/many", bearer(ADA))
    assert closed.code == 1008
    assert closed.reason.startswith("this resource requires membership of one of")
    assert len(closed.reason.encode()) <= 123


# -- 503 ------------------------------------------------------------------------------------


def expect_503(response: httpx.Response, retry_after: str | None) -> None:
    assert response.status_code == 503
    # None: the Hub gave no wait, so HubBearer's default (5 s) is sent.
    assert response.headers.get("Retry-After") == (retry_after or "5")
    assert "WWW-Authenticate" not in response.headers
    assert "try again later" in response.json()["detail"]
    assert_no_token(response)


@pytest.mark.parametrize(
    ("retry_after", "reset", "expected"),
    [(30, 120, "30"), (None, 42, "42"), (2.5, 120, "3")],
    ids=["retry-after", "ratelimit-header-only", "ceiling"],
)
def test_rate_limited_is_503_with_retry_after(
    hub: FakeHub, retry_after: float | None, reset: int, expected: str
) -> None:
    hub.rate_limit_next(retry_after=retry_after, reset=reset)
    with TestClient(make_app(hub.url)) as client:
        response = client.get("/me", headers=bearer(ADA))
    expect_503(response, expected)
    assert f"(in {expected}s)" in response.json()["detail"]


def test_while_the_hub_rate_limits_unknown_tokens_get_503_without_a_request(
    client: TestClient, hub: FakeHub
) -> None:
    assert client.get("/me", headers=bearer(ADA)).status_code == 200  # cached from now on
    hub.rate_limit_next(retry_after=30)
    expect_503(client.get("/me", headers=bearer(BYRON)), "30")
    assert hub.request_count == 2
    # A flood of tokens nobody has seen: answered at once, the Hub is not asked again.
    for _ in range(25):
        response = client.get("/me", headers=bearer(make_token()))
        assert response.status_code == 503
        assert response.headers["Retry-After"] in ("29", "30")
    expect_503(client.get("/me", headers=bearer(BYRON)), "30")
    assert hub.request_count == 2
    # Callers the cache knows are still served.
    assert client.get("/me", headers=bearer(ADA)).json()["username"] == "ada"
    assert hub.pending_faults == 0


def test_a_hub_window_that_runs_out_stops_the_flood(hf_home: Path) -> None:
    """FakeHub's own per-IP window (the RateLimit header says when it resets)."""
    with FakeHub(rate_limit=2, rate_limit_window=300) as hub:
        seed(hub)
        with TestClient(make_app(hub.url)) as client:
            assert client.get("/me", headers=bearer(ADA)).status_code == 200
            assert client.get("/me", headers=bearer(BYRON)).status_code == 200
            limited = client.get("/me", headers=bearer(FINE))
            assert limited.status_code == 503
            assert 290 <= int(limited.headers["Retry-After"]) <= 300
            for _ in range(10):
                assert client.get("/me", headers=bearer(make_token())).status_code == 503
            assert client.get("/me", headers=bearer(BYRON)).status_code == 200  # cached
        # The second answer said r=0;t=300: the third token is not even sent (issue 14).
        assert hub.request_count == 2


def test_could_not_check_warnings_are_rate_limited(
    hub: FakeHub, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_auth._rules, "_WARNING_INTERVAL", 0.5)

    def warnings() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "hub_auth" and "could not check" in record.getMessage()
        ]

    with TestClient(make_app(hub.url)) as client:
        hub.fail_next(500)
        assert client.get("/me", headers=bearer(ADA)).status_code == 503
        hub.rate_limit_next(retry_after=30)
        for _ in range(5):
            assert client.get("/me", headers=bearer(make_token())).status_code == 503
        # One line per kind, however many requests failed.
        assert len(warnings()) == 2
        assert "Internal Server Error" in warnings()[0]
        assert "rate limiting" in warnings()[1]
        time.sleep(0.6)
        assert client.get("/me", headers=bearer(make_token())).status_code == 503
    assert len(warnings()) == 3
    assert "and 4 more rate_limited failures since the last such warning" in warnings()[2]
    assert hub.request_count == 2


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        (lambda hub: hub.fail_next(500), None),
        (lambda hub: hub.fail_next(502), None),
        (lambda hub: hub.fail_next(503, headers={"Retry-After": "7"}), "7"),
        (lambda hub: hub.malformed_next(), None),
        (lambda hub: hub.malformed_next(body=b'{"unexpected": true}'), None),
        (lambda hub: hub.drop_next(2), None),
        (lambda hub: hub.fail_next(404), None),
    ],
    ids=["500", "502", "503", "not-json", "wrong-shape", "dropped", "404"],
)
def test_hub_failures_are_503(
    client: TestClient, hub: FakeHub, fault: Callable[[FakeHub], None], retry_after: str | None
) -> None:
    fault(hub)
    expect_503(client.get("/me", headers=bearer(ADA)), retry_after)
    # Not cached: the next request gets through.
    assert client.get("/me", headers=bearer(ADA)).status_code == 200


def test_hub_timeout_is_503(hub: FakeHub) -> None:
    hub.delay_next(3.0)
    with TestClient(make_app(hub.url, timeout=0.3)) as client:
        expect_503(client.get("/me", headers=bearer(ADA)), None)


def test_hub_unreachable_is_503() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with TestClient(make_app(f"http://127.0.0.1:{closed}")) as client:
        expect_503(client.get("/me", headers=bearer(ADA)), None)


def test_offline_is_503(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with TestClient(make_app(hub.url)) as client:
        response = client.get("/me", headers=bearer(ADA))
    expect_503(response, None)
    assert "offline" in response.json()["detail"]
    assert hub.request_count == 0


# -- where the HubAuth comes from -------------------------------------------------------------


def test_explicit_auth_and_auth_factory(hub: FakeHub) -> None:
    # Created outside any loop: its session opens lazily in the server's loop.
    explicit = HubAuth(endpoint=hub.url, cache=MemoryCache())
    calls: list[str] = []

    def pick(connection: HTTPConnection) -> HubAuth:
        calls.append(connection.url.path)
        return explicit

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await explicit.aclose()

    app = FastAPI(lifespan=lifespan)
    by_instance, by_factory = HubBearer(explicit), HubBearer(pick)

    @app.get("/instance")
    async def instance(user: UserInfo = Depends(by_instance)) -> str:  # noqa: B008
        return user.username

    @app.get("/factory")
    async def factory(user: UserInfo = Depends(by_factory)) -> str:  # noqa: B008
        return user.username

    with TestClient(app) as client:
        assert client.get("/instance", headers=bearer(ADA)).json() == "ada"
        assert client.get("/factory", headers=bearer(ADA)).json() == "ada"
    assert calls == ["/factory"]
    assert explicit.closed
    assert hub.request_count == 1  # one HubAuth, one cache


def test_no_hub_auth_configured_is_a_clear_error(hub: FakeHub) -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[UserInfo, Depends(HubBearer())]) -> str:
        return user.username

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"app\.state\.hub_auth"):
        client.get("/me", headers=bearer(ADA))


def test_no_cache_warns_once(hub: FakeHub, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app(hub.url, cache=False)) as client:
        for _ in range(3):
            assert client.get("/me", headers=bearer(ADA)).status_code == 200
    warnings = [r for r in caplog.records if r.name == "hub_auth" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "without a cache" in warnings[0].getMessage()
    assert hub.request_count == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="require_role"):
        HubBearer(require_role="owner")
    with pytest.raises(TypeError):
        HubBearer(require_orgs="engines")
    with pytest.raises(TypeError):
        HubBearer(auth="not a HubAuth")  # type: ignore[arg-type]
    assert repr(HubBearer(require_orgs=["a"])) == "HubBearer(require_orgs=['a'])"


def test_openapi_declares_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["HubBearer"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert schema["paths"]["/me"]["get"]["security"] == [{"HubBearer": []}]


# -- the example app ------------------------------------------------------------------------


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fastapi_app_example", ROOT / "examples" / "fastapi_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("EXAMPLE_TEAM_ORG", "poets")
    example = load_example()
    with TestClient(example.app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/me").status_code == 401
        me = client.get("/me", headers=bearer(ADA))
        assert me.json() == {"username": "ada", "orgs": ["engines", "poets"]}
        assert client.get("/team", headers=bearer(BYRON)).status_code == 200
        assert client.get("/team", headers=bearer(FINE)).status_code == 403
        assert client.get("/me", headers=bearer(UNKNOWN)).status_code == 401
        assert client.get("/me", headers=bearer(ADA)).status_code == 200
    assert hub.request_count == 4  # ada once (cached), byron, fine, unknown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_example_under_uvicorn_on_loopback(hub: FakeHub, tmp_path: Path) -> None:
    """The documented command, for real: uvicorn in a subprocess, a real HTTP client."""
    port = free_port()
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "EXAMPLE_TEAM_ORG": "engines",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "error::ResourceWarning",
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(base + "/", timeout=1.0)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"uvicorn did not start:\n{log.read_text()}")
                    time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=5.0) as http:
                assert http.get("/").status_code == 200
                missing = http.get("/me")
                assert missing.status_code == 401
                assert missing.headers["www-authenticate"] == "Bearer"
                assert http.get("/me", headers=bearer(ADA)).json()["username"] == "ada"
                assert http.get("/team", headers=bearer(ADA)).status_code == 200
                assert http.get("/team", headers=bearer(BYRON)).status_code == 403
                rejected = http.get("/me", headers=bearer(REVOKED))
                assert rejected.status_code == 401
                # Beyond the client's retry budget: no retry, the caller is told when.
                hub.rate_limit_next(retry_after=60)
                limited = http.get("/me", headers=bearer(FINE))
                assert limited.status_code == 503
                assert limited.headers["retry-after"] == "60"
        finally:
            server.terminate()
            code = server.wait(timeout=15)
    output_text = log.read_text()
    # uvicorn re-raises the SIGTERM it handled once shut down cleanly.
    assert code in (0, -signal.SIGTERM), output_text
    assert "Traceback" not in output_text, output_text
    assert "Unclosed" not in output_text, output_text
    assert "Application shutdown complete" in output_text
    for token in ALL_TOKENS:
        assert token not in output_text
    # ada (twice, cached: once), byron, revoked, fine (rate-limited).
    assert hub.request_count == 4
