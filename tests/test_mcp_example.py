"""examples/mcp_server.py (its one-process story, the documented uvicorn command) and the servers
of docs/mcp.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hub_auth.testing import FakeHub, FakeUser
from tests.markdown_blocks import python_blocks
from tests.test_mcp import INITIALIZE, MCP_HEADERS, ServedApp

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "error::ResourceWarning", **extra}


def test_the_example_tells_its_story() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mcp_server.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ada (Ada Lovelace), member of: engines",
        "10 tool calls, 1 Hub request",
        "403 this resource requires membership of one of: engines",
        "503 Retry-After: 5",
    ]


async def test_the_example_under_uvicorn(tmp_path: Path) -> None:
    """The documented command, for real: uvicorn in a subprocess, the official MCP client."""
    with FakeHub() as hub:
        token = hub.add_token(user=FakeUser(name="ada", orgs=["engines", "poets"]))
        log = tmp_path / "uvicorn.log"
        with log.open("wb") as output:
            server = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped in finally
                [sys.executable, "-m", "uvicorn", "examples.mcp_server:app", "--port", "0"],
                cwd=ROOT,
                env=_env(HF_ENDPOINT=hub.url),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                base = _wait_for_port(server, log)
                headers = {"authorization": f"Bearer {token}"}
                async with (
                    httpx2.AsyncClient(headers=headers, timeout=30) as http,
                    Client(streamable_http_client(f"{base}/mcp", http_client=http)) as mcp,
                ):
                    result = await mcp.call_tool("whoami", {})
                text = result.content[0].text  # type: ignore[union-attr]
                assert text == "ada (Ada), member of: engines, poets"
                missing = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
                assert missing.status_code == 401
                metadata = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp").json()
                assert metadata["authorization_servers"] == [hub.url]
            finally:
                server.terminate()
                server.wait(timeout=30)
    output_text = log.read_text()
    assert "Application shutdown complete" in output_text
    assert token not in output_text


def _wait_for_port(server: subprocess.Popen[bytes], log: Path) -> str:
    """uvicorn prints the port it bound (``--port 0``) once it serves."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "Uvicorn running on http://" in line:
                return line.split("Uvicorn running on ")[1].split()[0]
        assert server.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"uvicorn did not start:\n{log.read_text()}")


DOCS_SERVERS = [
    block
    for block in python_blocks((ROOT / "docs" / "mcp.md").read_text())
    if "app = " in block.code and "REDIS_URL" not in block.code
]


@pytest.mark.parametrize("block", DOCS_SERVERS, ids=lambda block: f"line-{block.line}")
async def test_the_servers_of_the_docs_page_work(
    block: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/mcp.md's server blocks (not run by test_docs_code: they serve) serve a member."""
    code = block.code  # type: ignore[attr-defined]
    with FakeHub() as hub:
        member = hub.add_token(user=FakeUser(name="ada", orgs=["my-org"]))
        outsider = hub.add_token(user=FakeUser(name="byron"))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        module = types.ModuleType("docs_block")
        exec(compile(code, f"docs/mcp.md:{block.line}", "exec"), module.__dict__)  # type: ignore[attr-defined]
        with ServedApp(lambda url: module.app) as served:
            async with (
                httpx2.AsyncClient(headers={"authorization": f"Bearer {member}"}) as http,
                Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as mcp,
            ):
                result = await mcp.call_tool("whoami", {})
            headers = {**MCP_HEADERS, "authorization": f"Bearer {outsider}"}
            refused = httpx.post(f"{served.url}/mcp", json=INITIALIZE, headers=headers)
    assert result.content[0].text.startswith("ada")  # type: ignore[union-attr]
    assert refused.status_code == 403
