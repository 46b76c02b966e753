"""A shell FakeHub with ``--oauth-app`` serves examples/signin_app.py's sign-in; the example's
own command line: a taken port, plain ``--help``."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import cast

import httpx
import pytest

from hub_auth.testing import FakeHub, make_token
from tests.oauth_browser import Browser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "signin_app.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("signin_app_shell", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shell_hub() -> Iterator[tuple[str, list[str]]]:
    """``python -m hub_auth.testing`` with a user and two OAuth apps: its URL and app lines."""
    server = subprocess.Popen(
        [
            sys.executable, "-m", "hub_auth.testing", "--port", "0", "--seed-users", "1",
            "--oauth-app", "demo:demo-secret", "--oauth-app", "public app",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.fullmatch(r"FakeHub listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match is not None, first
        yield match.group(1), [server.stdout.readline().rstrip("\n") for _ in range(2)]
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert server.returncode in (0, -15)
    assert stderr == ""


async def test_signin_app_signs_in_at_a_shell_fakehub(
    shell_hub: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, apps = shell_hub
    demo = re.fullmatch(r"OAuth app 'demo': client id ([0-9a-f]{24}) \(secret as given\)", apps[0])
    assert demo is not None, apps
    assert re.fullmatch(
        r"OAuth app 'public app': client id [0-9a-f]{24} \(public, PKCE only\)", apps[1]
    )
    assert "demo-secret" not in "\n".join(apps)
    assert f"client id {demo.group(1)} " in (ROOT / "docs/testing.md").read_text()  # same id
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.delenv(name, raising=False)
    example = _load_example()
    args = example.parse_args(
        ["--hub", url, "--client-id", demo.group(1), "--client-secret", "demo-secret"]
    )
    hub = cast(FakeHub, SimpleNamespace(url=url))  # the Browser only needs its URL

    async with Browser(example.create_app(example.oauth_from_args(args)), hub) as browser:
        page = await browser.sign_in()

    assert page.status_code == 200
    # The consent page signed in the first user of the tokens.
    assert '<strong id="username">user0</strong>' in page.text
    assert make_token("user0") not in page.text


async def test_a_wrong_secret_is_refused_by_the_shell_fakehub(
    shell_hub: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, apps = shell_hub
    client_id = apps[0].split("client id ")[1].split()[0]
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.delenv(name, raising=False)
    example = _load_example()
    args = example.parse_args(["--hub", url, "--client-id", client_id, "--client-secret", "x"])
    hub = cast(FakeHub, SimpleNamespace(url=url))

    async with Browser(example.create_app(example.oauth_from_args(args)), hub) as browser:
        page = await browser.sign_in()

    assert page.status_code == 400  # the shell FakeHub checked the secret it was given
    assert "invalid_client" in page.text
    assert 'id="username"' not in page.text


def test_oauth_app_needs_a_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub_auth.testing", "--oauth-app", ":secret"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert "expected NAME or NAME:SECRET" in done.stderr
    assert "secret" not in done.stderr.replace("SECRET", "")


def _example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_signin_app_with_its_port_taken_says_so_before_any_url() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = _example("--fake-hub", "--port", str(port))

    assert done.returncode == 2
    assert done.stdout == ""  # no "open http://..." pointing at someone else's server
    assert done.stderr.splitlines() == [f"error: port {port} is in use; choose another with --port"]


def test_signin_app_help_is_plain_text() -> None:
    done = _example("--help")

    assert done.returncode == 0
    assert "``" not in done.stdout
    assert ":class:" not in done.stdout and "::" not in done.stdout
    assert "--hub URL" in done.stdout
    assert "--client-id" in done.stdout and "OAUTH_CLIENT_ID" in done.stdout


def test_signin_app_serves_on_the_port_it_prints() -> None:
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--fake-hub", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("FakeHub at http://127.0.0.1:")
        line = server.stdout.readline()
        match = re.fullmatch(r"open (http://127\.0\.0\.1:\d+/)\n", line)
        assert match is not None, line
        page = httpx.get(match.group(1), timeout=10)
    finally:
        server.terminate()
        server.communicate(timeout=10)

    assert page.status_code == 200
    assert 'id="signin"' in page.text
