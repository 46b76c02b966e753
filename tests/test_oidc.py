"""OIDC exchange in CI ("Trusted Publishers") against FakeHub over real sockets.

HF_OIDC_RESOURCE turns it on; the id token comes from HF_OIDC_ID_TOKEN or from FakeHub's
stand-in for GitHub Actions' id-token URL; FakeHub counts the exchanges it answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from hub_auth import Err, ErrorKind, HubAuth, Ok
from hub_auth.cli import main
from hub_auth.sync import HubAuthSync
from hub_auth.testing import FakeHub, FakeUser, make_token
from hub_auth.testing._oauth import ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT

REPO = "ada-lovelace/engine-model"
ENV_TOKEN = make_token("env")
FILE_TOKEN = make_token("file")
GIVEN_TOKEN = make_token("given")
_OIDC_VARIABLES = (
    "HF_OIDC_RESOURCE",
    "HF_OIDC_ID_TOKEN",
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


@pytest.fixture(autouse=True)
def no_ci_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite may itself run in GitHub Actions: start from a job without OIDC."""
    for name in _OIDC_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(ENV_TOKEN, FakeUser(name="env-user"))
    hub.add_token(FILE_TOKEN, FakeUser(name="file-user"))
    hub.add_token(GIVEN_TOKEN, FakeUser(name="given-user"))
    return hub


@pytest.fixture
async def auth(hub: FakeHub, hf_home: Path) -> AsyncIterator[HubAuth]:
    async with HubAuth(endpoint=hub.url) as client:
        yield client


def use_id_token(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, **mint: object) -> str:
    """HF_OIDC_RESOURCE=REPO and HF_OIDC_ID_TOKEN minted for it (or as ``mint`` says)."""
    mint.setdefault("resources", [REPO])
    id_token = hub.oauth.mint_id_token(**mint)  # type: ignore[arg-type]
    monkeypatch.setenv("HF_OIDC_RESOURCE", REPO)
    monkeypatch.setenv("HF_OIDC_ID_TOKEN", id_token)
    return id_token


def use_github(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, **setup: object) -> None:
    """A GitHub Actions job with `permissions: id-token: write`, HF_OIDC_RESOURCE=REPO."""
    setup.setdefault("resources", [REPO])
    for name, value in hub.oauth.github_actions(**setup).items():  # type: ignore[arg-type]
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_OIDC_RESOURCE", REPO)


def token_of(result: object) -> str:
    assert isinstance(result, Ok), result
    return str(result.value.get_secret_value())


# -- the HF_OIDC_ID_TOKEN path -----------------------------------------------------------------


async def test_id_token_from_the_environment(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_token = use_id_token(monkeypatch, hub)
    token = token_of(await auth.get_token())
    assert token.startswith("hf_jwt_")
    assert hub.oauth.exchange_requests == [
        {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token_type": ID_TOKEN_TYPE,
            "subject_token": id_token,
            "resource": REPO,
        }
    ]
    # Every call that resolves a token uses it, from the cache: one exchange in all.
    assert (await auth.whoami()).unwrap().username == "ada-lovelace"
    headers = (await auth.auth_headers()).unwrap()
    assert headers == [("authorization", f"Bearer {token}")]
    assert hub.requests[-1].token == token
    assert hub.oauth.exchange_count == 1
    assert hub.oauth.token_requests == [TOKEN_EXCHANGE_GRANT]


async def test_a_username_resource_gets_an_oauth_token(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_OIDC_RESOURCE", "ada-lovelace")
    monkeypatch.setenv("HF_OIDC_ID_TOKEN", hub.oauth.mint_id_token(resources=["ada-lovelace"]))
    assert token_of(await auth.get_token()).startswith("hf_oauth_")
    assert (await auth.whoami()).unwrap().username == "ada-lovelace"


async def test_explicit_exchange(hub: FakeHub, hf_home: Path) -> None:
    id_token = hub.oauth.mint_id_token(resources=["datasets/ada-lovelace/notes"])
    # read_env=False: the explicit method needs no environment at all.
    async with HubAuth(endpoint=hub.url, read_env=False) as auth:
        result = await auth.exchange_oidc_token("datasets/ada-lovelace/notes", id_token=id_token)
        token = token_of(result)
        assert (await auth.whoami(token)).unwrap().username == "ada-lovelace"
        assert hub.oauth.exchange_requests[0]["resource"] == "datasets/ada-lovelace/notes"
        # Without an id token and without the environment, it says what is missing.
        missing = await auth.exchange_oidc_token(REPO)
        assert isinstance(missing, Err)
        assert missing.error.kind is ErrorKind.NO_TOKEN
        assert "HF_OIDC_ID_TOKEN" in str(missing.error)
        with pytest.raises(ValueError, match="resource"):
            await auth.exchange_oidc_token("  ")


def test_sync_facade_exchanges_too(
    fake_hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, fake_hub)
    with HubAuthSync(endpoint=fake_hub.url) as auth:
        assert auth.whoami().unwrap().username == "ada-lovelace"
        assert token_of(auth.get_token()).startswith("hf_jwt_")
    assert fake_hub.oauth.exchange_count == 1


# -- the GitHub Actions path -------------------------------------------------------------------


async def test_github_actions(hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    use_github(monkeypatch, hub)
    assert (await auth.whoami()).unwrap().username == "ada-lovelace"
    # The audience is the endpoint, appended to the URL's own query string.
    assert hub.oauth.github_requests == [{"api-version": "2.0", "audience": hub.url}]
    assert hub.oauth.exchange_count == 1
    assert hub.oauth.exchange_requests[0]["resource"] == REPO


async def test_hf_oidc_id_token_wins_over_github(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_github(monkeypatch, hub)
    id_token = use_id_token(monkeypatch, hub)
    assert token_of(await auth.get_token()).startswith("hf_jwt_")
    assert hub.oauth.github_requests == []
    assert hub.oauth.exchange_requests[0]["subject_token"] == id_token


@pytest.mark.parametrize(
    "missing", ["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
)
async def test_github_without_the_id_token_permission(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    use_github(monkeypatch, hub)
    monkeypatch.delenv(missing)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)  # never a silent fall-back to it
    for result in (await auth.get_token(), await auth.whoami(), await auth.auth_headers()):
        assert isinstance(result, Err)
        assert result.error.kind is ErrorKind.NO_TOKEN
        assert "permissions: id-token: write" in str(result.error)
    assert hub.request_count == 0
    assert hub.oauth.exchange_count == 0


async def test_github_refuses(hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    use_github(monkeypatch, hub, status=403)
    result = await auth.get_token()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.FORBIDDEN
    assert result.error.status == 403
    assert "permissions: id-token: write" in str(result.error)
    assert hub.oauth.exchange_count == 0


async def test_github_unreachable(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_github(monkeypatch, hub)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"http://127.0.0.1:{port}/x?api-version=2.0")
    result = await auth.get_token()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NETWORK
    assert "GitHub Actions" in str(result.error)
    assert "127.0.0.1" in str(result.error)


async def test_not_in_ci_and_no_id_token(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_OIDC_RESOURCE", REPO)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    result = await auth.whoami()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NO_TOKEN
    assert "HF_OIDC_ID_TOKEN" in str(result.error)
    assert "unset HF_OIDC_RESOURCE" in str(result.error)
    assert hub.request_count == 0


# -- the Hub rejects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mint", "reason"),
    [
        ({"audience": "https://huggingface.co"}, "audience"),
        ({"lifetime": -1.0}, "expired"),
        ({"resources": ["someone-else/model"]}, "no trusted publisher"),
    ],
)
async def test_the_hub_rejects_the_id_token(
    hub: FakeHub,
    auth: HubAuth,
    monkeypatch: pytest.MonkeyPatch,
    mint: dict[str, object],
    reason: str,
) -> None:
    id_token = use_id_token(monkeypatch, hub, **mint)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    result = await auth.whoami()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.UNAUTHORIZED
    assert result.error.status == 400
    message = str(result.error)
    assert "invalid_grant" in message
    assert reason in message
    assert "Trusted Publisher" in message
    assert id_token not in message
    assert id_token not in repr(result)
    assert hub.request_count == 0  # whoami was never asked, with HF_TOKEN or anything else


async def test_a_failed_exchange_is_tried_again_on_the_next_call(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, hub)
    hub.oauth.fail_next_exchange(503, {"error": "temporarily_unavailable"})
    result = await auth.get_token()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.SERVER_ERROR
    assert token_of(await auth.get_token()).startswith("hf_jwt_")
    assert hub.oauth.exchange_count == 2


async def test_what_the_hub_says_is_sanitized(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_token = use_id_token(monkeypatch, hub)
    leaked = make_token("leaked")
    hub.oauth.fail_next_exchange(
        400,
        {
            "error": "invalid_grant",
            "error_description": f"bad {id_token} and {leaked}\x1b[31m\n" + "x" * 1000,
        },
    )
    result = await auth.get_token()
    assert isinstance(result, Err)
    message = str(result.error)
    assert id_token.split(".")[1][:30] not in message  # not even the start of its claims
    assert "<id token>" in message
    assert leaked not in message
    assert "\x1b" not in message
    assert "\n" not in message
    assert len(message) < 800


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>not json</html>", "no usable access_token"),
        ({"access_token": "not-a-hub-token", "expires_in": 3600}, "no usable access_token"),
        ({"access_token": make_token("x"), "expires_in": "soon"}, "invalid expires_in"),
        ({"access_token": make_token("x"), "expires_in": -5}, "invalid expires_in"),
    ],
)
async def test_a_malformed_answer(
    hub: FakeHub,
    auth: HubAuth,
    monkeypatch: pytest.MonkeyPatch,
    body: dict[str, object] | bytes,
    problem: str,
) -> None:
    use_id_token(monkeypatch, hub)
    hub.oauth.fail_next_exchange(200, body)
    result = await auth.get_token()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.BAD_RESPONSE
    assert problem in str(result.error)


async def test_offline(hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    use_id_token(monkeypatch, hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with HubAuth(endpoint=hub.url) as offline:
        result = await offline.get_token()
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.OFFLINE
    assert hub.oauth.exchange_count == 0


# -- caching, expiry, concurrency --------------------------------------------------------------


async def test_github_tokens_are_exchanged_again_five_minutes_before_expiry(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.oauth.exchange_token_lifetime = 301  # fresh for 1 s with the 300 s margin
    use_github(monkeypatch, hub)
    first = token_of(await auth.get_token())
    assert token_of(await auth.get_token()) == first
    assert hub.oauth.exchange_count == 1
    await asyncio.sleep(1.1)
    second = token_of(await auth.get_token())
    assert second != first
    assert hub.oauth.exchange_count == 2
    assert len(hub.oauth.github_requests) == 2  # a new id token for each exchange


async def test_a_given_id_token_is_used_for_the_whole_lifetime(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As huggingface_hub: HF_OIDC_ID_TOKEN cannot be re-minted, so no early re-exchange...
    hub.oauth.exchange_token_lifetime = 301
    use_id_token(monkeypatch, hub)
    first = token_of(await auth.get_token())
    await asyncio.sleep(1.1)
    assert token_of(await auth.get_token()) == first
    assert hub.oauth.exchange_count == 1
    # ... but once the exchanged token has expired, it is exchanged again.
    hub.oauth.exchange_token_lifetime = 1
    monkeypatch.setenv("HF_OIDC_ID_TOKEN", hub.oauth.mint_id_token(resources=[REPO]))
    short = token_of(await auth.get_token())
    await asyncio.sleep(1.1)
    assert token_of(await auth.get_token()) != short
    assert hub.oauth.exchange_count == 3


async def test_cached_per_resource_and_id_token(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_token = hub.oauth.mint_id_token(resources=[REPO, "ada-lovelace"])
    repo = token_of(await auth.exchange_oidc_token(REPO, id_token=id_token))
    user = token_of(await auth.exchange_oidc_token("ada-lovelace", id_token=id_token))
    assert repo != user
    assert token_of(await auth.exchange_oidc_token(REPO, id_token=id_token)) == repo
    assert hub.oauth.exchange_count == 2
    # The environment with the same id token and resource shares the cache entry.
    monkeypatch.setenv("HF_OIDC_RESOURCE", REPO)
    monkeypatch.setenv("HF_OIDC_ID_TOKEN", id_token)
    assert token_of(await auth.get_token()) == repo
    assert hub.oauth.exchange_count == 2


@pytest.mark.parametrize("path", ["id_token", "github"])
async def test_fifty_concurrent_calls_make_one_exchange(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "github":
        use_github(monkeypatch, hub)
    else:
        use_id_token(monkeypatch, hub)
    results = await asyncio.gather(*(auth.whoami() for _ in range(50)))
    assert all(result.unwrap().username == "ada-lovelace" for result in results)
    assert hub.oauth.exchange_count == 1
    assert len(hub.oauth.github_requests) == (1 if path == "github" else 0)


async def test_concurrent_callers_share_a_failure_once(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, hub, lifetime=-1.0)
    results = await asyncio.gather(*(auth.get_token() for _ in range(20)))
    errors = [result.error for result in results if isinstance(result, Err)]
    assert len(errors) == 20
    assert hub.oauth.exchange_count == 1
    assert len({id(error) for error in errors}) == 20  # each caller its own error object


async def test_a_cancelled_caller_does_not_cancel_the_others(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, hub)
    first = asyncio.ensure_future(auth.get_token())
    second = asyncio.ensure_future(auth.get_token())
    await asyncio.sleep(0)
    first.cancel()
    assert token_of(await second).startswith("hf_jwt_")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert hub.oauth.exchange_count == 1


# -- precedence --------------------------------------------------------------------------------


async def test_oidc_beats_hf_token_and_the_token_file(
    hub: FakeHub, auth: HubAuth, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(FILE_TOKEN)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    assert token_of(await auth.get_token()) == ENV_TOKEN
    use_id_token(monkeypatch, hub)
    exchanged = token_of(await auth.get_token())
    assert exchanged not in (ENV_TOKEN, FILE_TOKEN)
    assert (await auth.whoami()).unwrap().username == "ada-lovelace"
    monkeypatch.delenv("HF_OIDC_RESOURCE")
    assert token_of(await auth.get_token()) == ENV_TOKEN


async def test_an_explicit_token_beats_oidc(
    hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, hub)
    async with HubAuth(endpoint=hub.url) as auth:
        assert (await auth.whoami(GIVEN_TOKEN)).unwrap().username == "given-user"
        await auth.set_token(GIVEN_TOKEN)
        assert token_of(await auth.get_token()) == GIVEN_TOKEN
    async with HubAuth(endpoint=hub.url, token=GIVEN_TOKEN) as auth:
        assert (await auth.whoami()).unwrap().username == "given-user"
    assert hub.oauth.exchange_count == 0


async def test_read_env_false_ignores_oidc(
    hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, hub)
    token_file = hf_home / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(FILE_TOKEN)
    async with HubAuth(endpoint=hub.url, read_env=False, token_path=token_file) as auth:
        assert token_of(await auth.get_token()) == FILE_TOKEN
    assert hub.oauth.exchange_count == 0


# -- secrets -----------------------------------------------------------------------------------


async def test_no_secret_in_logs_reprs_or_errors(
    hub: FakeHub, auth: HubAuth, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_github(monkeypatch, hub)
    caplog.set_level(logging.DEBUG)
    result = await auth.get_token()
    token = token_of(result)
    id_token = hub.oauth.exchange_requests[0]["subject_token"]
    secrets = (token, id_token, hub.oauth.github_request_token)
    headers = await auth.auth_headers()
    texts = [repr(result), repr(auth), repr(headers), caplog.text]
    assert any(REPO in record.getMessage() for record in caplog.records)  # it did log
    for text in texts:
        for secret in secrets:
            assert secret not in text
    # Nothing written to disk.
    assert not any(
        token in path.read_text(errors="replace")
        for path in Path(os.environ["HF_HOME"]).rglob("*")
        if path.is_file()
    )


# -- the CLI -----------------------------------------------------------------------------------


@pytest.mark.prints_token
def test_cli_token_prints_the_exchanged_token(
    fake_hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_id_token(monkeypatch, fake_hub)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    result = CliRunner().invoke(main, ["token"])
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert printed.startswith("hf_jwt_")
    assert fake_hub.tokens[printed].name == "ada-lovelace"
    assert fake_hub.oauth.exchange_count == 1


def test_cli_token_says_what_to_fix(
    fake_hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_github(monkeypatch, fake_hub)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    result = CliRunner().invoke(main, ["--endpoint", fake_hub.url, "token"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "permissions: id-token: write" in result.stderr
    assert "unset HF_OIDC_RESOURCE" in result.stderr
    assert "Traceback" not in result.output


# -- the same requests as huggingface_hub ------------------------------------------------------


def _hf_get_token(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from huggingface_hub import get_token; print(len(get_token() or ''))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def ci_env(fake_hub: FakeHub, hf_home: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in _OIDC_VARIABLES}
    env.update(
        {"HF_ENDPOINT": fake_hub.url, "HF_OIDC_RESOURCE": REPO, "HF_HUB_DISABLE_TELEMETRY": "1"}
    )
    yield env


async def test_same_requests_as_huggingface_hub_with_an_id_token(
    fake_hub: FakeHub, ci_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ci_env["HF_OIDC_ID_TOKEN"] = fake_hub.oauth.mint_id_token(resources=[REPO])
    done = await asyncio.to_thread(_hf_get_token, ci_env)
    assert done.returncode == 0, done.stderr[-500:]
    for name, value in ci_env.items():
        monkeypatch.setenv(name, value)
    async with HubAuth() as auth:
        token_of(await auth.get_token())
    theirs, ours = fake_hub.oauth.exchange_requests
    assert ours == theirs


async def test_same_requests_as_huggingface_hub_on_github(
    fake_hub: FakeHub, ci_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ci_env.update(fake_hub.oauth.github_actions(resources=[REPO]))
    done = await asyncio.to_thread(_hf_get_token, ci_env)
    assert done.returncode == 0, done.stderr[-500:]
    for name, value in ci_env.items():
        monkeypatch.setenv(name, value)
    async with HubAuth() as auth:
        token_of(await auth.get_token())
    theirs, ours = fake_hub.oauth.github_requests
    # The same audience, the endpoint. huggingface_hub 2.4 (httpx `params=`) drops the URL's
    # own `api-version=2.0`; hub_auth appends `&audience=` to it, as GitHub documents.
    assert ours == {**theirs, "api-version": "2.0"}
    assert ours["audience"] == fake_hub.url
    theirs_body, ours_body = fake_hub.oauth.exchange_requests
    # Each got its own id token from GitHub; everything else is the same.
    assert theirs_body.pop("subject_token") != ours_body.pop("subject_token")
    assert ours_body == theirs_body


# -- FakeHub's side, spoken to directly --------------------------------------------------------


async def test_fakehub_exchange_answers_like_the_hub(hub: FakeHub) -> None:
    id_token = hub.oauth.mint_id_token(resources=[REPO])
    valid = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token_type": ID_TOKEN_TYPE,
        "subject_token": id_token,
        "resource": REPO,
    }
    async with aiohttp.ClientSession() as session:

        async def post(body: dict[str, str]) -> tuple[int, dict[str, object]]:
            async with session.post(f"{hub.url}/oauth/token", json=body) as response:
                return response.status, await response.json()

        status, answer = await post(valid)
        assert status == 200
        assert set(answer) == {"access_token", "token_type", "expires_in", "issued_token_type"}
        assert answer["token_type"] == "bearer"
        assert answer["expires_in"] == 3600
        assert str(answer["access_token"]).startswith("hf_jwt_")
        for broken in ({"subject_token_type": "jwt"}, {"resource": ""}, {"subject_token": ""}):
            status, answer = await post({**valid, **broken})
            assert (status, answer["error"]) == (400, "invalid_request")
        status, answer = await post({**valid, "subject_token": "eyJunknown.x.y"})
        assert (status, answer["error"]) == (400, "invalid_grant")
        assert "error_description" in answer
        # The GitHub stand-in wants its request token.
        env = hub.oauth.github_actions(resources=[REPO])
        url = env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=x"
        async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
        bearer = {"Authorization": f"Bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
        async with session.get(url, headers=bearer) as response:
            assert response.status == 200
            minted = (await response.json())["value"]
        # Minted for the audience "x", not for the hub: refused.
        status, answer = await post({**valid, "subject_token": minted})
        assert (status, answer["error"]) == (400, "invalid_grant")
        assert "audience" in str(answer["error_description"])


async def test_an_exchange_in_flight_on_another_loop_is_not_joined() -> None:
    # After os.fork() the parent's loop thread is gone but its in-flight exchange is still
    # recorded: joining a future of another loop raised RuntimeError on every later call.
    import json
    import threading

    from hub_auth._http import RawAnswer
    from hub_auth._oauth.exchange import OidcExchanger

    other_loop = asyncio.new_event_loop()
    answered = json.dumps({"access_token": make_token(), "expires_in": 3600}).encode()

    class Client:
        async def request(self, *args: object, **kwargs: object) -> Ok[RawAnswer]:
            if asyncio.get_running_loop() is other_loop:
                await asyncio.Event().wait()  # the parent's exchange never finishes here
            return Ok(RawAnswer(200, answered, None))

    exchanger = OidcExchanger(Client(), "https://hub.example")  # type: ignore[arg-type]
    environ = {"HF_OIDC_ID_TOKEN": "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"}
    thread = threading.Thread(target=other_loop.run_forever, daemon=True)
    thread.start()
    stuck = asyncio.run_coroutine_threadsafe(
        exchanger.token("ns/repo", id_token=None, environ=environ), other_loop
    )
    try:
        await asyncio.sleep(0.1)

        result = await asyncio.wait_for(
            exchanger.token("ns/repo", id_token=None, environ=environ), timeout=5
        )

        assert isinstance(result, Ok)
    finally:
        stuck.cancel()
        for task in asyncio.run_coroutine_threadsafe(_all_tasks(), other_loop).result(5):
            other_loop.call_soon_threadsafe(task.cancel)
        await asyncio.sleep(0.1)
        other_loop.call_soon_threadsafe(other_loop.stop)
        thread.join(timeout=5)
        other_loop.close()


async def _all_tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
