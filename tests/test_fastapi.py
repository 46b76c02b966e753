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
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from hub_auth import HubAuth, MemoryCache, UserInfo
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
ALL_TOKENS = (ADA, BYRON, FINE, OAUTH, ADMIN, REVOKED, REFUSED, UNKNOWN)


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
    }
    for path, bearer in routes.items():
        # A default, not Annotated: string annotations cannot see this loop's `bearer`.
        async def endpoint_(
            user: UserInfo | None = Depends(bearer),  # noqa: B008
        ) -> dict[str, Any] | None:
            return user_json(user)

        app.get(path)(endpoint_)
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


# -- 503 ------------------------------------------------------------------------------------


def expect_503(response: httpx.Response, retry_after: str | None) -> None:
    assert response.status_code == 503
    assert response.headers.get("Retry-After") == retry_after
    assert "WWW-Authenticate" not in response.headers
    assert "try again later" in response.json()["detail"]
    assert_no_token(response)


def test_rate_limited_is_503_with_retry_after(client: TestClient, hub: FakeHub) -> None:
    hub.rate_limit_next(retry_after=30)
    expect_503(client.get("/me", headers=bearer(ADA)), "30")
    hub.rate_limit_next(retry_after=None, reset=42)  # only the RateLimit header says when
    expect_503(client.get("/me", headers=bearer(ADA)), "42")
    hub.rate_limit_next(retry_after=2.5)
    expect_503(client.get("/me", headers=bearer(ADA)), "3")
    assert client.get("/me", headers=bearer(ADA)).status_code == 200


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

    def pick(request: Request) -> HubAuth:
        calls.append(request.url.path)
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
