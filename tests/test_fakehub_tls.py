"""FakeHub over https (a trustme certificate on 127.0.0.1), in process and from its CLI."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from hub_auth import Err, HubAuth, Ok
from hub_auth.testing import FakeHub, make_token

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_hub(ca: trustme.CA) -> AsyncIterator[FakeHub]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    async with FakeHub(ssl_context=server_context) as hub:
        yield hub


async def test_https_url_and_a_client_that_trusts_the_ca(tls_hub: FakeHub, ca: trustme.CA) -> None:
    assert tls_hub.url == f"https://127.0.0.1:{tls_hub.port}"
    token = tls_hub.add_token(name="ada")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    connector = aiohttp.TCPConnector(ssl=client_context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        HubAuth(endpoint=tls_hub.url, session=session, read_env=False) as auth,
    ):
        result = await auth.whoami(token)
    assert isinstance(result, Ok), result
    assert result.value.username == "ada"
    assert tls_hub.request_count == 1


async def test_a_client_that_does_not_trust_the_ca_gets_an_err(tls_hub: FakeHub) -> None:
    token = tls_hub.add_token(name="ada")
    async with HubAuth(endpoint=tls_hub.url, read_env=False, max_attempts=1) as auth:
        result = await auth.whoami(token)
    assert isinstance(result, Err), result
    assert "certificate" in result.error.message.lower()
    assert tls_hub.request_count == 0  # the handshake failed: no request reached the handler


# What the benchmark does: FakeHub's CLI serves https, and a client process trusts the CA
# through SSL_CERT_FILE, which aiohttp's default context (so HubAuthSync) and
# huggingface_hub's httpx2 client both honour.
_CLIENT = textwrap.dedent(
    """
    import sys
    from huggingface_hub import HfApi
    from hub_auth import HubAuthSync, Ok

    url, token = sys.argv[1], sys.argv[2]
    with HubAuthSync(endpoint=url, read_env=False) as facade:
        result = facade.whoami(token)
    assert isinstance(result, Ok), result
    print(result.value.username, HfApi(endpoint=url).whoami(token=token)["name"])
    """
)


async def test_command_line_serves_https_trusted_through_ssl_cert_file(
    tmp_path: Path, ca: trustme.CA
) -> None:
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub_auth.testing",
        "--seed-users",
        "1",
        "--certfile",
        str(cert),
        "--keyfile",
        str(key),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        assert line.startswith("FakeHub listening on https://127.0.0.1:"), line
        url = line.rpartition(" ")[2].strip()
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CLIENT,
            url,
            make_token("user0"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**env, "SSL_CERT_FILE": str(ca_file)},
        )
        out, err = await asyncio.wait_for(client.communicate(), 60)
        assert client.returncode == 0, err.decode()
        assert out.decode().split() == ["user0", "user0"]
    finally:
        server.terminate()
        await server.communicate()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keyfile", "key.pem"], "--keyfile needs --certfile"),
        (["--certfile", "missing.pem"], "No such file"),
    ],
)
def test_command_line_rejects_bad_tls_options(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.testing", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
