"""hub_auth.mcp end to end: the real ``mcp`` client over streamable HTTP, real uvicorn, FakeHub.

Every test runs against both adapters (the official SDK's ``MCPServer`` with
``HubTokenVerifier.wrap``, and FastMCP with ``hub_auth.mcp.fastmcp.HubTokenVerifier``), each
served by uvicorn in a thread of its own, on a socket bound here.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer

from hub_auth import HubAuth, MemoryCache
from hub_auth.mcp import HubTokenVerifier, auth_settings, current_user
from hub_auth.testing import FakeHub, FakeUser

ADA = FakeUser(name="ada", fullname="Ada Lovelace", orgs=["engines", "poets"])
BYRON = FakeUser(name="byron", orgs=["poets"])
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


class ServedApp:
    """An ASGI app served by uvicorn in a thread, on a loopback socket bound and listening up
    front (``make_app`` gets the server's URL, which the app's resource URL needs)."""

    def __init__(self, make_app: Callable[[str], Any]) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        # Accepted sockets inherit it: without, each response waits ~40 ms for a delayed ACK.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Listening now, not when uvicorn's thread gets round to it: a request made right
        # after __enter__ waits in the backlog until the app has started, instead of being
        # refused (ECONNREFUSED) on a loaded machine.
        self._socket.listen()
        self.port = int(self._socket.getsockname()[1])
        app = make_app(self.url)
        # log_config=None: uvicorn must not reconfigure the test run's logging.
        config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()
        assert not self._thread.is_alive(), "uvicorn did not shut down within 30 s"


def _sdk_server(auth: HubAuth, url: str, **rules: Any) -> Any:
    verifier = HubTokenVerifier(auth, **rules)
    server = MCPServer("hub-tools", token_verifier=verifier, auth=auth_settings(url, auth=auth))
    _add_tools(server, get_access_token, current_user)
    return verifier.wrap(server.streamable_http_app(), on_shutdown=auth.aclose)


def _fastmcp_server(auth: HubAuth, url: str, **rules: Any) -> Any:
    from fastmcp import FastMCP
    from fastmcp.server.dependencies import get_access_token as fastmcp_access_token

    from hub_auth.mcp import fastmcp as hub_fastmcp

    provider = hub_fastmcp.HubTokenVerifier(
        auth, base_url=url.removesuffix("/mcp"), on_shutdown=auth.aclose, **rules
    )
    server = FastMCP("hub-tools", auth=provider)
    _add_tools(server, fastmcp_access_token, hub_fastmcp.current_user)
    return server.http_app(path="/mcp")


def _add_tools(
    server: Any, access_token: Callable[[], Any], caller: Callable[[], Awaitable[Any]]
) -> None:
    @server.tool()
    async def whoami() -> str:
        """Who is calling, and their organisations."""
        user = await caller()
        token = access_token()
        assert user is not None
        assert token.user is user
        assert token.claims["preferred_username"] == (user.username if user else None)
        return json.dumps({"user": user.username if user else None, "orgs": token.claims["orgs"]})


@dataclass
class Stack:
    hub: FakeHub
    base: str
    tokens: dict[str, str]

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    @asynccontextmanager
    async def client(self, token: str) -> AsyncIterator[Client]:
        headers = {"authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(self.mcp_url, http_client=http)) as client,
        ):
            yield client

    def post(self, token: str | None) -> httpx.Response:
        headers = dict(MCP_HEADERS)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return httpx.post(self.mcp_url, json=INITIALIZE, headers=headers, timeout=30)


BUILDERS: dict[str, Callable[..., Any]] = {"sdk": _sdk_server, "fastmcp": _fastmcp_server}


@pytest.fixture(params=sorted(BUILDERS))
def make_stack(request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Start FakeHub (ada, byron) and an MCP server with the given rules, per adapter."""
    build = BUILDERS[request.param]
    started: list[tuple[ServedApp, HubAuth]] = []
    with FakeHub() as hub:
        tokens = {"ada": hub.add_token(user=ADA), "byron": hub.add_token(user=BYRON)}

        def make(**rules: Any) -> Stack:
            # One attempt per check: a failing Hub is a 503 at once, no retry waits.
            auth = HubAuth(endpoint=hub.url, cache=MemoryCache(), max_attempts=1)
            # The borrowed auth is closed on the app's shutdown, in the server's loop.
            served = ServedApp(lambda url: build(auth, f"{url}/mcp", **rules))
            started.append((served.__enter__(), auth))
            return Stack(hub, served.url, tokens)

        try:
            yield make
        finally:
            for served, _ in started:
                served.__exit__(None, None, None)


async def _who(stack: Stack, token: str) -> dict[str, Any]:
    async with stack.client(token) as client:
        result = await client.call_tool("whoami", {})
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


def test_no_token_is_401_with_the_resource_metadata(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    answer = stack.post(None)
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'resource_metadata="' in challenge
    metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
    assert metadata_url.endswith("/.well-known/oauth-protected-resource/mcp")
    assert stack.hub.request_count == 0


def test_the_resource_metadata_names_the_hub(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    metadata = httpx.get(f"{stack.base}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["authorization_servers"] == [stack.hub.url]


def test_a_bad_token_is_401_invalid_token(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    answer = stack.post("hf_" + "x" * 34)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert answer.json()["error"] == "invalid_token"


async def test_a_good_token_reaches_the_tool_as_its_user(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    assert await _who(stack, stack.tokens["ada"]) == {"user": "ada", "orgs": ["engines", "poets"]}


async def test_a_hundred_calls_cost_one_hub_request(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    async with stack.client(stack.tokens["ada"]) as client:
        for _ in range(100):
            result = await client.call_tool("whoami", {})
            assert json.loads(result.content[0].text)["user"] == "ada"  # type: ignore[union-attr]
    assert stack.hub.request_count == 1


def test_the_org_rule_refuses_a_non_member(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(require_orgs=["engines"])
    refused = stack.post(stack.tokens["byron"])
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "access_denied",
        "error_description": "this resource requires membership of one of: engines",
    }
    assert stack.post(stack.tokens["ada"]).status_code == 200


async def test_hub_down_is_503_and_a_known_token_still_works(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    assert (await _who(stack, stack.tokens["ada"]))["user"] == "ada"
    stack.hub.fail_next(503, count=5)
    unseen = stack.post(stack.tokens["byron"])
    assert unseen.status_code == 503
    assert unseen.headers["retry-after"] == "5"
    assert unseen.json()["error"] == "temporarily_unavailable"
    assert "could not be checked" in unseen.json()["error_description"]
    # The Hub is still failing, but ada's answer is cached: her calls go on.
    assert (await _who(stack, stack.tokens["ada"]))["user"] == "ada"
    assert stack.hub.pending_faults == 4


def test_a_rate_limited_hub_passes_its_wait_on(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.hub.rate_limit_next(retry_after=42)
    answer = stack.post(stack.tokens["ada"])
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "42"


def test_no_token_reaches_the_logs(
    make_stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    """Checks, refusals and failures log nothing secret (the suite's secret guard searches
    every record too; this test makes sure there were records to search)."""
    stack = make_stack(require_orgs=["engines"])
    stack.hub.fail_next(500)
    with caplog.at_level(logging.DEBUG):
        assert stack.post(stack.tokens["ada"]).status_code == 503
        assert stack.post(stack.tokens["byron"]).status_code == 403
        assert stack.post("hf_" + "y" * 34).status_code == 401
    assert any("could not check" in record.getMessage() for record in caplog.records)
    for token in stack.tokens.values():
        assert token not in caplog.text
