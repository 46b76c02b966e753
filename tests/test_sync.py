"""HubAuthSync and ``hub_auth.sync`` against FakeHub over real sockets."""

from __future__ import annotations

import gc
import inspect
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio.to_thread
import pytest
from fastapi import FastAPI, Header
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hub_auth import DeviceCode, ErrorKind, HubAuth, HubAuthError, MemoryCache, Ok, TokenStore
from hub_auth import sync as hf_auth
from hub_auth._sync import HubAuthSync
from hub_auth._sync_support import DefaultClient, LoopRunningError
from hub_auth.testing import FakeHub, make_token

MALFORMED = "not-a-token"


@pytest.fixture
def auth(fake_hub: FakeHub, hf_home: Path) -> Iterator[HubAuthSync]:
    with HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home) as client:
        yield client


def _open_sessions() -> set[int]:
    gc.collect()
    return {
        id(obj)
        for obj in gc.get_objects()
        if isinstance(obj, aiohttp.ClientSession) and not obj.closed
    }


# -- every method against FakeHub ----------------------------------------------------------


def test_whoami_with_an_explicit_token(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada-lovelace", orgs=["analytical-engines"])

    user = auth.whoami(token).unwrap()

    assert user.username == "ada-lovelace"
    assert user.organizations == ("analytical-engines",)
    assert fake_hub.request_count == 1
    assert fake_hub.requests[-1].token == token


def test_whoami_accepts_a_secret_str(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")
    assert auth.whoami(SecretStr(token)).unwrap().username == "ada"


def test_hub_failures_come_back_as_err(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    revoked = fake_hub.add_token(name="old")
    fake_hub.revoke(revoked)

    result = auth.whoami(revoked)

    assert not result.is_ok()
    assert result.error.kind is ErrorKind.UNAUTHORIZED  # type: ignore[union-attr]
    assert result.error.request_id  # type: ignore[union-attr]
    assert revoked not in repr(result)
    assert revoked not in str(result.error)  # type: ignore[union-attr]


def test_server_error_after_retries(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada")
    fake_hub.fail_next(503, count=2)
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home, max_attempts=2, retry_budget=5)

    result = auth.whoami(token)

    assert result.error.kind is ErrorKind.SERVER_ERROR  # type: ignore[union-attr]
    assert fake_hub.request_count == 2


def test_network_error_when_nothing_listens(hf_home: Path) -> None:
    with FakeHub() as hub:
        url = hub.url
    auth = HubAuthSync(endpoint=url, hf_home=hf_home, max_attempts=1)

    result = auth.whoami(make_token())

    assert result.error.kind is ErrorKind.NETWORK  # type: ignore[union-attr]


def test_get_token_without_any(auth: HubAuthSync) -> None:
    assert auth.get_token().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


def test_set_token_persists_across_calls(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")

    assert auth.set_token(token) == Ok(None)

    assert auth.get_token().unwrap().get_secret_value() == token
    assert auth.whoami().unwrap().username == "ada"
    assert auth.whoami().unwrap().username == "ada"
    assert [request.token for request in fake_hub.requests] == [token, token]


def test_set_token_rejects_a_malformed_token(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    good = fake_hub.add_token(name="ada")
    auth.set_token(good)

    assert auth.set_token(MALFORMED).error.kind is ErrorKind.INVALID_TOKEN  # type: ignore[union-attr]

    assert auth.get_token().unwrap().get_secret_value() == good


def test_constructor_token_is_used(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="grace")
    with HubAuthSync(token=token, endpoint=fake_hub.url, hf_home=hf_home) as auth:
        assert auth.whoami().unwrap().username == "grace"
        assert token not in repr(auth)


def test_auth_headers(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")
    assert auth.auth_headers(token) == Ok([("authorization", f"Bearer {token}")])
    assert auth.auth_headers().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]
    assert fake_hub.request_count == 0


def test_validate_token(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    good = fake_hub.add_token(name="ada")
    revoked = fake_hub.add_token(name="old")
    fake_hub.revoke(revoked)

    assert auth.validate_token(good) == Ok(None)
    assert auth.validate_token(revoked).error.kind is ErrorKind.INVALID_TOKEN  # type: ignore[union-attr]
    assert fake_hub.request_count == 2
    # A local check only: no request.
    assert auth.validate_token(make_token(), remote=False) == Ok(None)
    assert auth.validate_token(MALFORMED).error.kind is ErrorKind.INVALID_TOKEN  # type: ignore[union-attr]
    assert fake_hub.request_count == 2


def test_login_list_switch_logout(auth: HubAuthSync, fake_hub: FakeHub, hf_home: Path) -> None:
    first = fake_hub.add_token(name="ada", token_name="laptop")
    second = fake_hub.add_token(name="ada", token_name="ci")

    assert auth.login(first).unwrap().token_name == "laptop"
    info = auth.login(second).unwrap()
    assert (info.token_name, info.user.username) == ("ci", "ada")
    assert (hf_home / "token").read_text() == second

    listed = auth.list_tokens().unwrap()
    assert sorted((t.name, t.active) for t in listed) == [("ci", True), ("laptop", False)]
    assert all(first not in t.masked_token and second not in t.masked_token for t in listed)

    assert auth.switch_token("laptop").unwrap().token_name == "laptop"
    assert (hf_home / "token").read_text() == first
    assert auth.get_token().unwrap().get_secret_value() == first
    assert auth.whoami().unwrap().username == "ada"
    assert auth.switch_token("nope").error.kind is ErrorKind.NOT_FOUND  # type: ignore[union-attr]

    removed = auth.logout().unwrap()
    assert sorted(removed.removed) == ["ci", "laptop"]
    assert not (hf_home / "token").exists()
    assert auth.list_tokens() == Ok([])
    assert auth.get_token().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


def test_login_with_a_rejected_token_stores_nothing(
    auth: HubAuthSync, fake_hub: FakeHub, hf_home: Path
) -> None:
    revoked = fake_hub.add_token(name="old")
    fake_hub.revoke(revoked)

    assert auth.login(revoked).error.kind is ErrorKind.UNAUTHORIZED  # type: ignore[union-attr]
    assert not (hf_home / "token").exists()


def test_login_without_a_token_or_terminal(auth: HubAuthSync) -> None:
    # pytest's stdin is not a terminal: no prompt, an Err.
    assert auth.login().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


def test_properties(auth: HubAuthSync, fake_hub: FakeHub, hf_home: Path) -> None:
    assert auth.endpoint == fake_hub.url
    assert auth.token_path == hf_home / "token"
    assert isinstance(auth.store, TokenStore)


def test_reads_the_environment_like_hub_auth(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fake_hub.add_token(name="env-user")
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)

    assert HubAuthSync().whoami().unwrap().username == "env-user"
    ignoring = HubAuthSync(read_env=False, endpoint=fake_hub.url)
    assert ignoring.whoami().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]


def test_the_whoami_cache_persists_across_calls_and_threads(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    token = fake_hub.add_token(name="ada")
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home, cache=MemoryCache(ttl=60))

    assert auth.whoami(token).unwrap().username == "ada"
    assert auth.whoami(token).unwrap().username == "ada"
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda _: auth.whoami(token).unwrap().username, range(4)))

    assert names == ["ada"] * 4
    assert fake_hub.request_count == 1


# -- sessions, lifecycle --------------------------------------------------------------------


def test_close_closes_the_session_and_stops_the_loop_thread(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    token = fake_hub.add_token(name="ada")
    before = _open_sessions()
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)
    assert auth._loop is None  # nothing is started before the first call

    assert auth.whoami(token).is_ok()
    assert auth.login(token).is_ok()
    assert auth._loop is not None
    thread = auth._loop.thread
    assert thread.is_alive()
    assert len(_open_sessions() - before) == 1  # one session, kept between calls

    auth.close()

    assert _open_sessions() - before == set()
    assert not thread.is_alive()


def test_close_and_with(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada")
    with HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home) as auth:
        assert not auth.closed
        assert auth.whoami(token).is_ok()
    assert auth.closed
    assert "closed" in repr(auth)

    with pytest.raises(RuntimeError, match="closed") as info:
        auth.whoami(token)
    assert not isinstance(info.value, HubAuthError)
    with pytest.raises(RuntimeError, match="closed"):
        auth.get_token()
    with pytest.raises(RuntimeError, match="closed"), auth:
        pass
    auth.close()  # idempotent
    assert fake_hub.request_count == 1


def test_constructor_validation(hf_home: Path) -> None:
    with pytest.raises(ValueError, match="invalid token"):
        HubAuthSync(token=MALFORMED)
    with pytest.raises(TypeError):
        HubAuthSync(session=object())  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="pool_limit"):
        HubAuthSync(pool_limit=0)


# -- the running-loop guard -----------------------------------------------------------------

# One call per public coroutine of HubAuth (test_every_method_is_guarded checks the list).
GUARDED_CALLS: dict[str, Callable[[HubAuthSync, str], object]] = {
    "get_token": lambda auth, token: auth.get_token(),
    "set_token": lambda auth, token: auth.set_token(token),
    "auth_headers": lambda auth, token: auth.auth_headers(),
    "whoami": lambda auth, token: auth.whoami(token),
    "validate_token": lambda auth, token: auth.validate_token(token),
    "login": lambda auth, token: auth.login(token, force=True),
    "logout": lambda auth, token: auth.logout(),
    "list_tokens": lambda auth, token: auth.list_tokens(),
    "switch_token": lambda auth, token: auth.switch_token("stored"),
    "exchange_oidc_token": lambda auth, token: auth.exchange_oidc_token("ada/model"),
    "start_device_login": lambda auth, token: auth.start_device_login(),
    "health": lambda auth, token: auth.health(),
    "complete_device_login": lambda auth, token: auth.complete_device_login(
        DeviceCode(
            user_code="ABCD-EFGH",
            verification_uri="http://127.0.0.1:9/oauth/device",
            verification_uri_complete="http://127.0.0.1:9/oauth/device?user_code=ABCD-EFGH",
            expires_at=datetime.now(UTC),
            interval=5,
            device_code=SecretStr("device-code-never-sent"),
        )
    ),
}


def test_every_method_is_guarded() -> None:
    coroutines = {
        name
        for name, member in inspect.getmembers(HubAuth, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "aclose"
    }
    assert set(GUARDED_CALLS) == coroutines


@pytest.mark.parametrize("method", sorted(GUARDED_CALLS))
async def test_inside_a_running_loop_raises_at_once(
    method: str, fake_hub: FakeHub, hf_home: Path
) -> None:
    stored = fake_hub.add_token(name="ada", token_name="stored")
    TokenStore(hf_home / "token").save("stored", stored).unwrap()
    token_file = (hf_home / "token").read_bytes()
    other = fake_hub.add_token(name="grace")
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)

    with pytest.raises(LoopRunningError) as info:
        GUARDED_CALLS[method](auth, other)

    error = info.value
    assert isinstance(error, HubAuthError)
    assert isinstance(error, RuntimeError)
    assert f"HubAuthSync.{method}()" in str(error)
    assert f"async with HubAuth() as auth: await auth.{method}(" in str(error)
    assert (error.function, error.method) == (f"HubAuthSync.{method}", method)
    # Nothing was done: no request, the login files and the in-memory token untouched.
    assert fake_hub.request_count == 0
    assert (hf_home / "token").read_bytes() == token_file
    assert auth._auth._token is None
    assert auth._loop is None  # refused before the loop thread was started


def test_loop_running_error_pickles() -> None:
    error = LoopRunningError("hf_auth.whoami")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is LoopRunningError
    assert (copy.function, copy.method, copy.kind, str(copy)) == (
        "hf_auth.whoami",
        "whoami",
        error.kind,
        str(error),
    )


# -- worker threads ----------------------------------------------------------------------------


async def test_from_an_anyio_worker_thread(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada")
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)

    result = await anyio.to_thread.run_sync(auth.whoami, token)

    assert result.unwrap().username == "ada"
    assert fake_hub.request_count == 1


def test_fastapi_def_endpoint_works_and_async_endpoint_is_refused(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    token = fake_hub.add_token(name="ada")
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)
    app = FastAPI()

    @app.get("/me")
    def me(authorization: str = Header()) -> dict[str, Any]:
        # A `def` endpoint runs in FastAPI's thread pool: no event loop in this thread.
        result = auth.whoami(authorization.removeprefix("Bearer "))
        if isinstance(result, Ok):
            return {"username": result.value.username}
        return {"error": result.error.kind.value}

    @app.get("/me-async")
    async def me_async() -> dict[str, Any]:
        return {"username": auth.whoami(token).unwrap().username}

    with TestClient(app) as client:
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json() == {"username": "ada"}
        response = client.get("/me", headers={"Authorization": f"Bearer {make_token()}"})
        assert response.json() == {"error": "unauthorized"}
        with pytest.raises(LoopRunningError, match="whoami"):
            client.get("/me-async")
    assert fake_hub.request_count == 2


def test_many_threads_at_once(fake_hub: FakeHub, hf_home: Path) -> None:
    tokens = {fake_hub.add_token(name=f"user{i}"): f"user{i}" for i in range(32)}
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)
    fake_hub.default_delay = 0.02  # keep calls overlapping
    start = threading.Barrier(len(tokens))

    def calls(token: str) -> list[str]:
        start.wait()
        return [auth.whoami(token).unwrap().username for _ in range(3)]

    with ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(calls, tokens))

    assert results == [[name] * 3 for name in tokens.values()]
    assert fake_hub.request_count == 3 * len(tokens)


# -- hub_auth.sync, the module functions ------------------------------------------------------


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hf_auth, "_default", DefaultClient(HubAuthSync))
    yield
    hf_auth._default.close()


@pytest.mark.usefixtures("fresh_default")
def test_module_functions_on_the_default_from_the_environment(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = fake_hub.add_token(name="ada")
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", token)

    assert hf_auth.whoami().unwrap().username == "ada"
    assert hf_auth.get_token().unwrap().get_secret_value() == token
    assert hf_auth.default_client() is hf_auth.default_client()
    assert hf_auth.default_client().endpoint == fake_hub.url


@pytest.mark.usefixtures("fresh_default")
def test_every_module_function(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada", token_name="laptop")
    other = fake_hub.add_token(name="ada", token_name="ci")
    client = hf_auth.configure(endpoint=fake_hub.url, hf_home=hf_home, read_env=False)
    assert hf_auth.default_client() is client

    assert hf_auth.get_token().error.kind is ErrorKind.NO_TOKEN  # type: ignore[union-attr]
    assert hf_auth.validate_token(token) == Ok(None)
    assert hf_auth.login(token).unwrap().token_name == "laptop"
    assert hf_auth.login(other).unwrap().token_name == "ci"
    assert sorted(t.name for t in hf_auth.list_tokens().unwrap()) == ["ci", "laptop"]
    assert hf_auth.switch_token("laptop").unwrap().token_name == "laptop"
    assert hf_auth.whoami().unwrap().username == "ada"
    assert hf_auth.auth_headers() == Ok([("authorization", f"Bearer {token}")])
    assert hf_auth.set_token(other) == Ok(None)
    assert hf_auth.get_token().unwrap().get_secret_value() == other
    assert hf_auth.logout("ci").unwrap().removed == ("ci",)
    assert hf_auth.get_token().unwrap().get_secret_value() == token  # the token file again
    assert [r.token for r in fake_hub.requests] == [token, token, other, token]


@pytest.mark.usefixtures("fresh_default")
def test_configure_replaces_and_closes_the_default(fake_hub: FakeHub, hf_home: Path) -> None:
    first = hf_auth.default_client()
    second = hf_auth.configure(endpoint=fake_hub.url, hf_home=hf_home)

    assert first.closed
    assert not second.closed
    assert hf_auth.default_client() is second
    with pytest.raises(ValueError, match="invalid token"):
        hf_auth.configure(token=MALFORMED)
    assert hf_auth.default_client() is second


@pytest.mark.usefixtures("fresh_default")
def test_default_is_created_once_under_concurrency() -> None:
    start = threading.Barrier(8)

    def get() -> HubAuthSync:
        start.wait()
        return hf_auth.default_client()

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: get(), range(8)))

    assert len({id(client) for client in clients}) == 1


@pytest.mark.usefixtures("fresh_default")
async def test_module_function_inside_a_loop_raises(fake_hub: FakeHub) -> None:
    hf_auth.configure(endpoint=fake_hub.url)
    with pytest.raises(LoopRunningError, match=r"hub_auth\.sync\.list_tokens\(\)"):
        hf_auth.list_tokens()


def test_hf_home_from_the_fixture_is_used(hf_home: Path) -> None:
    # The facade resolves paths as HubAuth does (conftest sets HF_HOME for every test).
    assert HubAuthSync().token_path == Path(os.environ["HF_HOME"]) / "token" == hf_home / "token"


# -- the example ---------------------------------------------------------------------------------


def test_example_script_runs() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "sync_script.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FakeHub is listening on http://127.0.0.1:")
    assert lines[1:4] == [
        "logged in as ada-lovelace; token stored as 'laptop'",
        "whoami: ada-lovelace (organizations: analytical-engines)",
        f"stored token * laptop  {lines[3].split()[-1]}",
    ]
    assert lines[3].split()[-1].startswith("hf_****")
    assert lines[4] == "logged out; removed laptop"
    assert lines[5].startswith("whoami after logout: no_token (")
    assert result.stderr == ""
