"""FakeHub against real clients: every fault, counters, recording, threads and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub_auth._models import UserInfo
from hub_auth._tokens import check_format
from hub_auth.testing import (
    FORBIDDEN_MESSAGE,
    INVALID_CREDENTIALS_MESSAGE,
    WHOAMI_PATH,
    FakeHub,
    FakeUser,
    make_token,
)

SAMPLES = Path(__file__).parent / "data" / "whoami-v2"
REPO_ROOT = Path(__file__).resolve().parent.parent
RATELIMIT = re.compile(r'^"api";r=(\d+);t=(\d+)$')


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with FakeHub() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def get(
    session: aiohttp.ClientSession, hub: FakeHub, token: str | None = None, **kwargs: Any
) -> tuple[int, Any, bytes]:
    headers = bearer(token) if token is not None else kwargs.pop("headers", {})
    async with session.get(hub.url + WHOAMI_PATH, headers=headers, **kwargs) as resp:
        return resp.status, resp.headers, await resp.read()


# -- tokens and bodies ----------------------------------------------------------------------


def test_make_token_is_realistic_and_deterministic_per_seed() -> None:
    token = make_token("user1")
    assert re.fullmatch(r"hf_[A-Za-z0-9]{34}", token)
    assert check_format(token) is None
    assert make_token("user1") == token
    assert make_token("user2") != token
    assert make_token() != make_token()
    assert re.fullmatch(r"hf_[A-Za-z0-9]{34}", make_token())


def test_body_like_the_write_token_sample() -> None:
    sample = json.loads((SAMPLES / "user_write_token.json").read_text())
    user = FakeUser(
        name="ada-lovelace",
        email="ada@example.com",
        orgs=[{"name": "analytical-engines", "role_in_org": "admin", "can_pay": True}],
        token_name="ada-workstation",
    )
    body = user.body()
    assert set(body) == set(sample)
    assert set(body["orgs"][0]) == set(sample["orgs"][0])
    assert set(body["auth"]["accessToken"]) == set(sample["auth"]["accessToken"])
    parsed, expected = UserInfo.model_validate(body), UserInfo.model_validate(sample)
    for attribute in ("username", "fullname", "email", "email_verified", "is_pro", "type"):
        assert getattr(parsed, attribute) == getattr(expected, attribute)
    assert parsed.organizations == expected.organizations
    assert parsed.orgs[0].role_in_org == "admin"
    assert parsed.orgs[0].can_pay is True
    assert parsed.token is not None
    assert expected.token is not None
    assert parsed.token.display_name == expected.token.display_name
    assert parsed.token.role == "write"
    assert parsed.token.created_at is not None


def test_body_like_the_oauth_and_fine_grained_samples() -> None:
    oauth = FakeUser(name="mary-s", token_name=None, expires_at="2026-12-01T00:00:00.000Z")
    body = oauth.body()
    assert "accessToken" not in body["auth"]
    assert "email" not in body
    info = UserInfo.model_validate(body)
    assert info.token is not None
    assert info.token.display_name is None
    assert info.token.expires_at is not None
    assert info.token.expires_at.year == 2026

    default_fine = UserInfo.model_validate(FakeUser(name="charles-b", role="fineGrained").body())
    assert default_fine.token is not None
    assert default_fine.token.has_permission("repo.content.read", "charles-b")
    assert not default_fine.token.has_permission("repo.write", "charles-b")

    sample = json.loads((SAMPLES / "user_fine_grained_token.json").read_text())
    grained = sample["auth"]["accessToken"]["fineGrained"]
    user = FakeUser(name="charles-b", role="fineGrained", fine_grained=grained, is_pro=True)
    assert user.body()["auth"]["accessToken"]["fineGrained"] == grained
    info = UserInfo.model_validate(user.body())
    assert info.is_pro is True
    assert info.token is not None
    assert info.token.has_permission("post.write")


def test_body_defaults_extra_fields_and_fresh_copies() -> None:
    user = FakeUser(name="grace_hopper", extra={"newField": {"x": 1}})
    body = user.body()
    assert body["fullname"] == "Grace Hopper"
    assert re.fullmatch(r"[0-9a-f]{24}", body["id"])
    assert body["id"] == FakeUser(name="grace_hopper").body()["id"]
    assert body["id"] != FakeUser(name="ada").body()["id"]
    assert body["newField"] == {"x": 1}
    assert UserInfo.model_validate(body).username == "grace_hopper"
    body["newField"]["x"] = 2
    body["orgs"].append("mutated")
    assert user.body()["newField"] == {"x": 1}
    assert user.body()["orgs"] == []
    with pytest.raises(ValueError, match="name"):
        FakeUser(name="x", orgs=[{"role_in_org": "admin"}]).body()


# -- normal answers -------------------------------------------------------------------------


async def test_known_token_gets_its_body_and_headers(
    hub: FakeHub, session: aiohttp.ClientSession
) -> None:
    token = hub.add_token(name="ada-lovelace", email="ada@example.com", orgs=["engines"])
    status, headers, raw = await get(session, hub, token)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Request-Id"].startswith("Root=1-")
    match = RATELIMIT.match(headers["RateLimit"])
    assert match is not None
    assert int(match.group(1)) > 0
    assert 0 < int(match.group(2)) <= 300
    assert headers["RateLimit-Policy"] == '"fixed window";"api";q=1000;w=300'
    info = UserInfo.model_validate_json(raw)
    assert info.username == "ada-lovelace"
    assert info.email == "ada@example.com"
    assert info.organizations == ("engines",)
    _, second, _ = await get(session, hub, token)
    assert second["X-Request-Id"] != headers["X-Request-Id"]


async def test_authorization_parsing(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    url = hub.url + WHOAMI_PATH
    accepted = [
        {"Authorization": f"Bearer {token}"},
        {"AUTHORIZATION": f"bearer {token}"},
        {"authorization": f"BEARER   {token}  "},
    ]
    for headers in accepted:
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200, headers
    sample_401 = json.loads((SAMPLES / "error_401.json").read_text())
    refused = [
        {},
        {"authorization": token},
        {"authorization": f"Basic {token}"},
        {"authorization": "Bearer"},
        {"authorization": f"Bearer {make_token()}"},
    ]
    for headers in refused:
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 401, headers
            assert await resp.json() == sample_401
            assert resp.headers["X-Error-Message"] == INVALID_CREDENTIALS_MESSAGE
            assert "X-Request-Id" in resp.headers
            assert RATELIMIT.match(resp.headers["RateLimit"])
            assert "RateLimit-Policy" in resp.headers


async def test_revoke_forbid_and_re_add(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    other = hub.add_token(user=FakeUser(name="bob"))
    assert (await get(session, hub, token))[0] == 200
    hub.revoke(token)
    status, headers, raw = await get(session, hub, token)
    assert status == 401
    assert json.loads(raw) == {"error": INVALID_CREDENTIALS_MESSAGE}

    hub.forbid(other)
    status, headers, raw = await get(session, hub, other)
    assert status == 403
    assert json.loads(raw) == {"error": FORBIDDEN_MESSAGE}
    assert headers["X-Error-Message"] == FORBIDDEN_MESSAGE
    hub.forbid(other, message="Token is pending approval by the organization")
    assert json.loads((await get(session, hub, other))[2])["error"].startswith("Token is pending")

    hub.add_token(token, FakeUser(name="ada-again"))
    status, _, raw = await get(session, hub, token)
    assert status == 200
    assert json.loads(raw)["name"] == "ada-again"

    unknown = make_token()
    with pytest.raises(KeyError) as excinfo:
        hub.revoke(unknown)
    assert unknown not in str(excinfo.value)
    with pytest.raises(KeyError):
        hub.forbid(unknown)


async def test_tokens_table_and_add_token_arguments() -> None:
    preset = make_token("preset")
    hub = FakeHub(tokens={preset: FakeUser(name="preset-user")})
    generated = hub.add_token()
    named = hub.add_token(name="named", is_pro=True)
    table = hub.tokens
    assert table[preset].name == "preset-user"
    assert table[generated].name.startswith("user")
    assert table[named].is_pro
    assert check_format(generated) is None
    with pytest.raises(TypeError):
        hub.add_token(None, FakeUser(name="a"), name="b")
    with pytest.raises(TypeError, match="str"):
        hub.add_token(FakeUser(name="a"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whitespace"):
        hub.add_token("hf_bad token", name="x")
    with pytest.raises(RuntimeError, match="not started"):
        _ = hub.url
    assert "not started" in repr(hub)
    async with hub:
        assert str(hub.port) in hub.url
        assert preset not in repr(hub)
        with pytest.raises(RuntimeError, match="already started"):
            await hub.start()
    await hub.close()  # closing twice is harmless


async def test_unknown_paths_are_404_json(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    for method, path in [("GET", "/api/whoami"), ("GET", "/"), ("POST", WHOAMI_PATH)]:
        async with session.request(method, hub.url + path) as resp:
            assert resp.status == 404
            assert await resp.json() == {"error": "Not found"}
            assert resp.headers["X-Request-Id"].startswith("Root=1-")
    assert hub.request_count == 0
    assert [r.path for r in hub.requests] == ["/api/whoami", "/", WHOAMI_PATH]


# -- faults ---------------------------------------------------------------------------------


async def test_fail_next_default_and_custom(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    hub.fail_next(503, count=2)
    hub.fail_next(
        500, headers={"X-Custom": "1"}, body="<html>oops</html>", content_type="text/html"
    )
    for _ in range(2):
        status, headers, raw = await get(session, hub, token)
        assert status == 503
        assert json.loads(raw) == {"error": "Service Unavailable"}
        assert headers["X-Error-Message"] == "Service Unavailable"
        assert "X-Request-Id" in headers
    status, headers, raw = await get(session, hub, token)
    assert (status, raw, headers["X-Custom"]) == (500, b"<html>oops</html>", "1")
    assert headers["Content-Type"].startswith("text/html")
    assert "X-Request-Id" in headers
    assert hub.pending_faults == 0
    assert (await get(session, hub, token))[0] == 200
    assert hub.request_count == 4
    with pytest.raises(ValueError, match="HTTP status"):
        hub.fail_next(42)
    with pytest.raises(ValueError, match="count"):
        hub.fail_next(500, count=-1)


async def test_faults_are_served_first_in_first_out(
    hub: FakeHub, session: aiohttp.ClientSession
) -> None:
    token = hub.add_token(name="ada")
    hub.rate_limit_next()
    hub.malformed_next()
    hub.fail_next(502)
    hub.redirect_next("/elsewhere")
    assert hub.pending_faults == 4
    statuses = [(await get(session, hub, token, allow_redirects=False))[0] for _ in range(5)]
    assert statuses == [429, 200, 502, 302, 200]
    hub.fail_next(500, count=3)
    hub.clear_faults()
    assert hub.pending_faults == 0
    assert (await get(session, hub, token))[0] == 200


async def test_rate_limit_next_headers(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    hub.rate_limit_next()
    hub.rate_limit_next(retry_after=None, reset=7, remaining=3)
    hub.rate_limit_next(retry_after=0.5, send_ratelimit_header=False)
    status, headers, raw = await get(session, hub, token)
    assert status == 429
    assert headers["Retry-After"] == "30"
    assert headers["RateLimit"] == '"api";r=0;t=120'
    assert headers["RateLimit-Policy"] == '"fixed window";"api";q=1000;w=300'
    assert "error" in json.loads(raw)
    status, headers, _ = await get(session, hub, token)
    assert status == 429
    assert "Retry-After" not in headers
    assert headers["RateLimit"] == '"api";r=3;t=7'
    status, headers, _ = await get(session, hub, token)
    assert status == 429
    assert headers["Retry-After"] == "0.5"
    assert "RateLimit" not in headers
    assert "RateLimit-Policy" not in headers


async def test_delay_next_and_default_delay(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    hub.delay_next(0.15)
    started = time.perf_counter()
    assert (await get(session, hub, token))[0] == 200
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    await get(session, hub, token)
    assert time.perf_counter() - started < 0.1

    hub.default_delay = 0.05
    started = time.perf_counter()
    await get(session, hub, token)
    assert time.perf_counter() - started >= 0.05
    hub.default_delay = 0
    with pytest.raises(ValueError, match="default_delay"):
        hub.default_delay = -1

    # A client that times out sees a timeout; closing the hub does not wait for the delay.
    hub.delay_next(30)
    with pytest.raises(asyncio.TimeoutError):
        await get(session, hub, token, timeout=aiohttp.ClientTimeout(total=0.1))


async def test_close_does_not_wait_for_a_held_request(session: aiohttp.ClientSession) -> None:
    hub = FakeHub()
    await hub.start()
    token = hub.add_token(name="ada")
    hub.delay_next(30)
    pending = asyncio.create_task(get(session, hub, token))
    for _ in range(200):
        if hub.request_count:
            break
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    await hub.close()
    assert time.perf_counter() - started < 1
    # Disconnected, then refused when aiohttp retries.
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


async def test_drop_next_closes_without_answer(
    hub: FakeHub, session: aiohttp.ClientSession
) -> None:
    token = hub.add_token(name="ada")
    hub.drop_next()
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    request = f"GET {WHOAMI_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()

    # aiohttp retries an idempotent request once after a disconnect: two drops fail it.
    hub.drop_next(2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(session, hub, token)
    hub.drop_next(1)
    assert (await get(session, hub, token))[0] == 200
    assert hub.request_count == 1 + 2 + 2


async def test_malformed_next(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    hub.malformed_next()
    hub.malformed_next(body='{"name": 1}', status=200)
    hub.malformed_next(body="<html>gateway</html>", status=502, content_type="text/html")
    url = hub.url + WHOAMI_PATH
    async with session.get(url, headers=bearer(token)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        with pytest.raises(json.JSONDecodeError):
            await resp.json()
    status, _, raw = await get(session, hub, token)
    assert status == 200
    with pytest.raises(ValueError, match="validation error"):
        UserInfo.model_validate_json(raw)
    status, headers, raw = await get(session, hub, token)
    assert (status, raw) == (502, b"<html>gateway</html>")
    assert headers["Content-Type"] == "text/html"


async def test_redirect_next(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")
    hub.redirect_next("https://elsewhere.example/api/whoami-v2", status=307)
    status, headers, _ = await get(session, hub, token, allow_redirects=False)
    assert status == 307
    assert headers["Location"] == "https://elsewhere.example/api/whoami-v2"
    assert "X-Request-Id" in headers

    hub.reset_counts()
    hub.redirect_next(WHOAMI_PATH)
    async with session.get(hub.url + WHOAMI_PATH, headers=bearer(token)) as resp:
        assert resp.status == 200
        assert len(resp.history) == 1
    assert hub.request_count == 2
    with pytest.raises(ValueError, match="redirect"):
        hub.redirect_next("/x", status=200)


async def test_failure_rate(hub: FakeHub, session: aiohttp.ClientSession) -> None:
    token = hub.add_token(name="ada")

    async def statuses(n: int) -> list[int]:
        return [(await get(session, hub, token))[0] for _ in range(n)]

    hub.set_failure_rate(503, 0.5, seed=7)
    first = await statuses(60)
    assert set(first) == {200, 503}
    assert 15 <= first.count(503) <= 45
    hub.set_failure_rate(503, 0.5, seed=7)
    assert await statuses(60) == first

    hub.set_failure_rate(500, 1.0)
    hub.fail_next(418)
    assert await statuses(2) == [418, 500]  # queued faults come first
    hub.set_failure_rate(500, 0)
    assert await statuses(3) == [200, 200, 200]
    with pytest.raises(ValueError, match="rate"):
        hub.set_failure_rate(500, 1.5)


# -- counters, recording, rate limit --------------------------------------------------------


async def test_counts_and_recorded_requests(session: aiohttp.ClientSession) -> None:
    async with FakeHub(record_limit=3) as hub:
        token = hub.add_token(name="ada")
        hub.fail_next(500)
        hub.drop_next(2)
        await get(session, hub, token)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(session, hub, token)
        url = f"{hub.url}{WHOAMI_PATH}?probe=1"
        async with session.get(url, headers={**bearer(token), "User-Agent": "probe/1"}) as resp:
            request_id = resp.headers["X-Request-Id"]
        assert hub.request_count == 4
        records = hub.requests
        assert len(records) == 3  # bounded
        last = records[-1]
        assert (last.method, last.path, last.query_string) == ("GET", WHOAMI_PATH, "probe=1")
        assert last.headers["user-agent"] == "probe/1"
        assert last.token == token
        assert last.peer == "127.0.0.1"
        assert last.request_id == request_id
        assert token not in repr(last)
        assert "hf_****" in repr(last)
        hub.reset_counts()
        assert hub.request_count == 0
        assert hub.requests == []


async def test_per_ip_rate_limit_window(session: aiohttp.ClientSession) -> None:
    async with FakeHub(rate_limit=3, rate_limit_window=0.25) as hub:
        token = hub.add_token(name="ada")
        answers = [await get(session, hub, token) for _ in range(5)]
        assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429]
        remaining = [RATELIMIT.match(h["RateLimit"]).group(1) for _, h, _ in answers]  # type: ignore[union-attr]
        assert remaining == ["2", "1", "0", "0", "0"]
        assert all(h["RateLimit-Policy"] == '"fixed window";"api";q=3;w=1' for _, h, _ in answers)
        assert answers[3][1]["Retry-After"] == "1"
        assert "error" in json.loads(answers[3][2])
        assert hub.request_count == 5

        if sys.platform == "linux":  # all of 127/8 is loopback there, not on macOS
            # Another peer address has a window of its own.
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with aiohttp.ClientSession(connector=connector) as other:
                assert (await get(other, hub, token))[0] == 200
            assert hub.requests[-1].peer == "127.0.0.2"

        await asyncio.sleep(0.3)
        assert (await get(session, hub, token))[0] == 200
        assert [(await get(session, hub, token))[0] for _ in range(3)] == [200, 200, 429]
        hub.reset_counts()  # also opens a new window
        assert (await get(session, hub, token))[0] == 200
    with pytest.raises(ValueError, match="rate_limit"):
        FakeHub(rate_limit=0)


async def test_concurrent_configuration_from_another_thread(
    hub: FakeHub, session: aiohttp.ClientSession
) -> None:
    token = hub.add_token(name="ada")

    def configure() -> None:
        for _ in range(100):
            hub.fail_next(500)

    worker = threading.Thread(target=configure)
    worker.start()
    results = await asyncio.gather(*(get(session, hub, token) for _ in range(150)))
    worker.join()
    failed = sum(1 for status, _, _ in results if status == 500)
    assert failed + hub.pending_faults == 100
    assert hub.request_count == 150


# -- thread mode and the pytest fixture -----------------------------------------------------


def test_thread_mode_from_sync_code() -> None:
    with FakeHub() as hub:
        token = hub.add_token(name="ada")
        request = urllib.request.Request(hub.url + WHOAMI_PATH, headers=bearer(token))
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert UserInfo.model_validate_json(resp.read()).username == "ada"
        hub.fail_next(500)
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(request, timeout=5)
        assert excinfo.value.code == 500
        assert excinfo.value.headers["X-Request-Id"].startswith("Root=1-")
        excinfo.value.close()
        url = hub.url
        assert hub.request_count == 2
        with pytest.raises(RuntimeError, match="already started"):
            hub.start_in_thread()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + WHOAMI_PATH, timeout=2)
    hub.stop_thread()  # stopping twice is harmless


async def test_thread_mode_serves_async_clients(session: aiohttp.ClientSession) -> None:
    with FakeHub() as hub:
        token = hub.add_token(name="ada")
        hub.delay_next(0.1)
        hub.drop_next(2)
        results = await asyncio.gather(
            get(session, hub, token), get(session, hub, token), return_exceptions=True
        )
        assert sum(isinstance(r, aiohttp.ServerDisconnectedError) for r in results) == 1
        with pytest.raises(RuntimeError, match="stop_thread"):
            await hub.close()
        assert (await get(session, hub, token))[0] == 200


def test_thread_start_failure_is_raised() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        hub = FakeHub(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="address already in use"):
            hub.start_in_thread()
        port = taken.getsockname()[1]
    with hub:  # the failed attempt left nothing behind: the same hub starts once it is free
        assert hub.port == port


def test_fake_hub_fixture_in_sync_test(fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")
    request = urllib.request.Request(fake_hub.url + WHOAMI_PATH, headers=bearer(token))
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    assert fake_hub.request_count == 1


async def test_fake_hub_fixture_in_async_test(
    fake_hub: FakeHub, session: aiohttp.ClientSession
) -> None:
    token = fake_hub.add_token(name="ada")
    fake_hub.fail_next(503)
    assert (await get(session, fake_hub, token))[0] == 503
    assert (await get(session, fake_hub, token))[0] == 200


# -- python -m hub_auth.testing -------------------------------------------------------------


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub_auth.testing",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )


async def test_command_line_entry_point(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    tokens_in = tmp_path / "in.json"
    own = make_token("own")
    tokens_in.write_text(json.dumps({own: {"name": "own-user", "is_pro": True}}))
    tokens_out = tmp_path / "out.json"
    bad = tmp_path / "bad.json"
    bad.write_text('{"hf_x": {"nom": "typo"}}')
    # Started together: each process spends most of its time importing aiohttp.
    seeded, plain, failing = await asyncio.gather(
        _spawn(
            "--seed-users", "3", "--tokens-file", str(tokens_in),
            "--tokens-out", str(tokens_out), "--print-tokens",
        ),
        _spawn(),
        _spawn("--tokens-file", str(bad)),
    )  # fmt: skip
    assert seeded.stdout is not None
    assert seeded.stderr is not None
    assert plain.stdout is not None
    assert failing.stderr is not None
    try:
        line = (await asyncio.wait_for(seeded.stdout.readline(), 10)).decode()
        match = re.fullmatch(r"FakeHub listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match is not None, line
        url = match.group(1)
        printed = [(await seeded.stdout.readline()).decode().split() for _ in range(4)]
        assert [own, "own-user"] in printed
        assert [make_token("user1"), "user1"] in printed

        async with session.get(url + WHOAMI_PATH, headers=bearer(make_token("user1"))) as resp:
            assert resp.status == 200
            assert (await resp.json())["name"] == "user1"
        async with session.get(url + WHOAMI_PATH, headers=bearer(own)) as resp:
            assert (await resp.json())["isPro"] is True

        table = json.loads(tokens_out.read_text())
        assert table[make_token("user0")] == {"name": "user0"}
        assert table[own] == {"name": "own-user", "is_pro": True}

        line = (await asyncio.wait_for(plain.stdout.readline(), 10)).decode()
        assert line.startswith("FakeHub listening on http://127.0.0.1:")
    finally:
        seeded.send_signal(signal.SIGTERM)
        plain.send_signal(signal.SIGINT)
        codes = await asyncio.wait_for(asyncio.gather(seeded.wait(), plain.wait()), 10)
    assert list(codes) == [0, 0]
    assert await seeded.stderr.read() == b""  # no warning (e.g. runpy's double import)
    assert await asyncio.wait_for(failing.wait(), 10) == 2
    assert b"name" in await failing.stderr.read()
