"""Quiet retries and network errors in plain words (issue 11).

- Retries log on the ``hub_auth`` logger at DEBUG (attempt, wait, cause; never the token), so
  a library call prints nothing when the application configured no logging.
- A network failure names the endpoint's origin (``scheme://host:port``) and the cause:
  "connection refused", "name not resolved", "TLS certificate not trusted", "timed out after
  N s"; never aiohttp's repr (``ssl:default``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from hub_auth import Err, ErrorKind, HubAuth
from hub_auth._http import HubClient
from hub_auth._settings import Settings
from hub_auth.testing import FakeHub, make_token

TOKEN = make_token("network-errors")


def _run_script(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env["HF_HOME"] = str(tmp_path / "hf")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


_SCRIPT = """
    import logging, sys
    {setup}
    from hub_auth import HubAuthSync
    from hub_auth.testing import FakeHub

    token = {token!r}
    with FakeHub() as hub:
        hub.add_token(token, name="ada")
        hub.fail_next(503, 2)
        with HubAuthSync(endpoint=hub.url, read_env=False) as auth:
            print(auth.whoami(token).unwrap().username)
        with HubAuthSync(endpoint="http://127.0.0.1:1", read_env=False) as auth:
            print(auth.whoami(token).error.kind)
"""


def test_retries_print_nothing_without_logging_configured(tmp_path: Path) -> None:
    done = _run_script(_SCRIPT.format(setup="", token=TOKEN), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ada", "network"]
    assert done.stderr == ""


def test_retries_are_logged_at_debug_on_the_hub_auth_logger(tmp_path: Path) -> None:
    setup = "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s %(message)s')"
    done = _run_script(_SCRIPT.format(setup=setup, token=TOKEN), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "retrying" in line]
    assert len(lines) == 4, done.stderr  # two 503s, then two refused connections
    for line in lines:
        assert line.startswith("DEBUG hub_auth whoami attempt "), line
    assert "attempt 1 of 3 failed, retrying in 0." in lines[0]
    assert "the Hub had an internal error" in lines[0]
    assert "status 503" in lines[0]
    assert "attempt 2 of 3" in lines[1]
    assert "http://127.0.0.1:1: connection refused" in lines[2]
    assert TOKEN not in done.stderr
    assert TOKEN[-4:] + "\n" not in done.stderr
    assert "stamina" not in done.stderr


async def test_retry_log_names_attempt_wait_and_cause(
    fake_hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    fake_hub.add_token(TOKEN, name="ada")
    fake_hub.fail_next(502)
    with caplog.at_level(logging.DEBUG, logger="hub_auth"):
        async with HubAuth(endpoint=fake_hub.url, read_env=False) as auth:
            assert (await auth.whoami(TOKEN)).unwrap().username == "ada"
    retries = [r for r in caplog.records if r.name == "hub_auth" and "retrying" in r.message]
    assert len(retries) == 1
    assert retries[0].levelno == logging.DEBUG
    assert "attempt 1 of 3" in retries[0].message
    assert "status 502" in retries[0].message
    assert fake_hub.request_count == 2


# -- error messages --------------------------------------------------------------------------


async def _whoami_error(endpoint: str, **options: float) -> str:
    async with HubAuth(endpoint=endpoint, read_env=False, **options) as auth:  # type: ignore[arg-type]
        error = (await auth.whoami(TOKEN)).error  # type: ignore[union-attr]
    assert error.kind in (ErrorKind.NETWORK, ErrorKind.TIMEOUT)
    assert "ssl:default" not in error.message
    assert "Cannot connect" not in error.message
    return error.message


async def test_connection_refused_names_scheme_host_and_port() -> None:
    message = await _whoami_error("http://127.0.0.1:1/some/path", max_attempts=1)
    assert message == "could not reach the Hub at http://127.0.0.1:1: connection refused"


async def test_unresolvable_name() -> None:
    message = await _whoami_error("http://nonexistent.invalid", max_attempts=1, timeout=10)
    assert message == "could not reach the Hub at http://nonexistent.invalid: name not resolved"


async def test_timeout_says_after_how_long(fake_hub: FakeHub) -> None:
    fake_hub.add_token(TOKEN, name="ada")
    fake_hub.delay_next(3.0)
    message = await _whoami_error(fake_hub.url, max_attempts=1, timeout=0.5)
    assert message == f"could not reach the Hub at {fake_hub.url}: timed out after 0.5 s"


async def test_oauth_requests_name_their_failures_as_whoami_does() -> None:
    """Device login, refresh and OIDC go through whoami's request path: same words."""
    settings = Settings.resolve(endpoint="http://127.0.0.1:1", read_env=False, timeout=5)
    client = HubClient(settings)
    try:
        refused = "could not reach the Hub at http://127.0.0.1:1: connection refused"
        form = await client.post_oauth_form("/oauth/device", {"client_id": "c"})
        assert isinstance(form, Err) and form.error.message == refused
        assert form.error.kind is ErrorKind.NETWORK
        exchange = await client.request("POST", "http://127.0.0.1:1/oauth/token", json_body={})
        assert isinstance(exchange, Err) and exchange.error.message == refused
        # Another service (GitHub's id-token service, an OpenID provider) by its own origin.
        other = await client.request("GET", "http://127.0.0.1:2/x")
        assert isinstance(other, Err)
        assert other.error.message == "could not reach http://127.0.0.1:2: connection refused"
    finally:
        await client.close()


async def test_a_request_time_limit_is_named_in_the_message() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)  # longer than the request's 0.2 s
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/oauth/token", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = HubClient(Settings.resolve(endpoint=url, read_env=False))
    try:
        answer = await client.request("POST", url + "/oauth/token", form={}, time_limit=0.2)
        assert isinstance(answer, Err) and answer.error.kind is ErrorKind.TIMEOUT
        assert answer.error.message == f"could not reach the Hub at {url}: timed out after 0.2 s"
    finally:
        await client.close()
        await runner.cleanup()


@pytest.fixture
async def untrusted_tls_hub() -> AsyncIterator[str]:
    """An https server whose certificate comes from a CA nobody trusts."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"name": "mallory"})

    app = web.Application()
    app.router.add_get("/api/whoami-v2", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_untrusted_certificate_is_named_and_not_retried(
    untrusted_tls_hub: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hub_auth"):
        message = await _whoami_error(untrusted_tls_hub, max_attempts=3)
    assert message.startswith(
        f"could not reach the Hub at {untrusted_tls_hub}: TLS certificate not trusted"
    ), message
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
