"""``python -m benchmarks.mcp``: MCP servers checking Hugging Face tokens, against FakeHub.

Two questions, measured in one run with the official MCP client over streamable HTTP and
uvicorn (each server in a thread of its own, FakeHub in another):

1. Hub requests for 1,000 tool calls by 10 users (10 sessions of 100 calls, concurrently):
   FastMCP's ``HuggingFaceTokenVerifier`` against hub_auth's verifiers (official SDK and
   FastMCP). FastMCP's verifier hard-codes ``https://huggingface.co``: this harness, and only
   it, points its two endpoint constants at FakeHub. The tokens are OAuth tokens
   (``hf_oauth_...``), which ``/oauth/userinfo`` accepts, so that verifier works as it would.
2. Tool-call latency: the median of sequential calls in one session, on the same server with
   no auth and with hub_auth (warm cache), for each framework.

    python -m benchmarks.mcp            # 10 users x 100 calls; 300 calls for latency
    python -m benchmarks.mcp --smoke    # tiny sizes: proves the harness still works
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hub_auth import HubAuth, MemoryCache
from hub_auth.testing import FakeHub, FakeUser

__all__ = ["main", "run"]


@contextmanager
def serve(make_app: Callable[[str], Any]) -> Any:
    """``make_app(base_url)`` under uvicorn in a thread, on a socket bound here."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    # Accepted sockets inherit TCP_NODELAY; without it every response stalls ~40 ms (Nagle
    # against delayed ACKs), which uvicorn avoids only on sockets it binds itself.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = uvicorn.Config(make_app(url), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def _tool(server: Any) -> None:
    @server.tool()
    async def echo(text: str) -> str:
        """The tool every call makes: a trivial one, so auth is what differs."""
        return text


def sdk_app(auth: HubAuth | None, *, constant: str | None = None) -> Callable[[str], Any]:
    """The official SDK's server with hub_auth (``auth``), with a verifier that accepts any
    token at no cost (``constant``: the issuer it names), or with no auth."""
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer

    from hub_auth.mcp import HubTokenVerifier, auth_settings

    class ConstantVerifier:
        async def verify_token(self, token: str) -> AccessToken:
            return AccessToken(token=token, client_id="bench", scopes=[])

    def make(url: str) -> Any:
        if constant is not None:
            settings = AuthSettings(
                issuer_url=constant, resource_server_url=f"{url}/mcp", validate_token_resource=False
            )
            server = MCPServer(
                "bench", token_verifier=ConstantVerifier(), auth=settings, log_level="WARNING"
            )
            _tool(server)
            return server.streamable_http_app()
        if auth is None:
            server = MCPServer("bench", log_level="WARNING")
            _tool(server)
            return server.streamable_http_app()
        verifier = HubTokenVerifier(auth)
        settings = auth_settings(f"{url}/mcp", auth=auth)
        server = MCPServer("bench", token_verifier=verifier, auth=settings, log_level="WARNING")
        _tool(server)
        return verifier.wrap(server.streamable_http_app(), on_shutdown=auth.aclose)

    return make


def fastmcp_app(
    auth: HubAuth | None, *, anchor: str | None = None, constant: bool = False
) -> Callable[[str], Any]:
    """FastMCP with hub_auth (``auth``), with FastMCP's own verifier (``anchor``: the Hub's
    URL it lists), with a verifier that accepts any token at no cost, or with no auth."""
    from fastmcp import FastMCP
    from fastmcp.server.auth import TokenVerifier
    from fastmcp.server.auth.auth import AccessToken

    class ConstantVerifier(TokenVerifier):
        async def verify_token(self, token: str) -> AccessToken:
            return AccessToken(token=token, client_id="bench", scopes=[])

    def make(url: str) -> Any:
        provider: Any = None
        if constant:
            provider = ConstantVerifier(base_url=url)
        elif anchor is not None:
            from fastmcp.server.auth import RemoteAuthProvider
            from fastmcp.server.auth.providers.huggingface import HuggingFaceTokenVerifier

            provider = RemoteAuthProvider(
                HuggingFaceTokenVerifier(), authorization_servers=[anchor], base_url=url
            )
        elif auth is not None:
            from hub_auth.mcp.fastmcp import HubTokenVerifier

            provider = HubTokenVerifier(auth, base_url=url, on_shutdown=auth.aclose)
        server = FastMCP("bench", auth=provider)
        _tool(server)
        return server.http_app(path="/mcp")

    return make


@contextmanager
def anchor_pointed_at(hub: FakeHub) -> Any:
    """FastMCP's verifier with its hard-coded huggingface.co endpoints pointed at FakeHub."""
    from fastmcp.server.auth.providers import huggingface

    saved = huggingface.HUGGINGFACE_USERINFO_ENDPOINT, huggingface.HUGGINGFACE_WHOAMI_ENDPOINT
    huggingface.HUGGINGFACE_USERINFO_ENDPOINT = f"{hub.url}/oauth/userinfo"
    huggingface.HUGGINGFACE_WHOAMI_ENDPOINT = f"{hub.url}/api/whoami-v2"
    try:
        yield
    finally:
        huggingface.HUGGINGFACE_USERINFO_ENDPOINT, huggingface.HUGGINGFACE_WHOAMI_ENDPOINT = saved


def hub_requests(hub: FakeHub) -> int:
    return hub.request_count + hub.oauth.openid.userinfo_requests


async def session_calls(url: str, token: str | None, calls: int) -> list[float]:
    """One MCP session making ``calls`` sequential tool calls; the seconds of each."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    times = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        for index in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("echo", {"text": str(index)})
            times.append(time.perf_counter() - started)
            if result.is_error:
                raise RuntimeError(f"tool call failed: {result.content}")
    return times


def _new_auth(hub: FakeHub) -> HubAuth:
    return HubAuth(endpoint=hub.url, cache=MemoryCache(ttl=300))


def count_requests(users: int, calls: int) -> list[tuple[str, int, int]]:
    """(verifier, tool calls, Hub requests) for ``users`` sessions of ``calls`` calls."""
    rows = []
    with FakeHub(record_limit=10) as hub:
        people = [FakeUser(name=f"user{index}", orgs=["bench"]) for index in range(users)]
        tokens = [hub.oauth.issue_access_token(person)[0] for person in people]
        setups: list[tuple[str, Callable[[], Callable[[str], Any]]]] = [
            ("FastMCP HuggingFaceTokenVerifier", lambda: fastmcp_app(None, anchor=hub.url)),
            ("hub_auth.mcp (official SDK)", lambda: sdk_app(_new_auth(hub))),
            ("hub_auth.mcp.fastmcp (FastMCP)", lambda: fastmcp_app(_new_auth(hub))),
        ]
        for name, setup in setups:
            with anchor_pointed_at(hub), serve(setup()) as url:
                before = hub_requests(hub)

                async def everyone(url: str = url) -> None:
                    await asyncio.gather(*(session_calls(url, token, calls) for token in tokens))

                asyncio.run(everyone())
                rows.append((name, users * calls, hub_requests(hub) - before))
    return rows


def latency(calls: int, rounds: int = 5) -> list[tuple[str, float, float, float]]:
    """(framework, median ms: no auth, the framework's auth with a verifier that costs
    nothing, hub_auth with a warm cache).

    The servers run side by side; blocks of calls alternate between them (``rounds`` each),
    so a slow moment of the machine falls on all of them.
    """
    rows = []
    with FakeHub(record_limit=10) as hub:
        token = hub.oauth.issue_access_token(FakeUser(name="ada"))[0]
        setups: list[tuple[str, list[Callable[[], Callable[[str], Any]]]]] = [
            (
                "official SDK",
                [
                    lambda: sdk_app(None),
                    lambda: sdk_app(None, constant=hub.url),
                    lambda: sdk_app(_new_auth(hub)),
                ],
            ),
            (
                "FastMCP",
                [
                    lambda: fastmcp_app(None),
                    lambda: fastmcp_app(None, constant=True),
                    lambda: fastmcp_app(_new_auth(hub)),
                ],
            ),
        ]
        for name, makers in setups:
            with (
                serve(makers[0]()) as plain,
                serve(makers[1]()) as free,
                serve(makers[2]()) as ours,
            ):
                runs = ((plain, None), (free, token), (ours, token))
                times: list[list[float]] = [[] for _ in runs]
                for url, bearer in runs:
                    asyncio.run(session_calls(url, bearer, 5))  # warm: the cache and the server
                for _ in range(rounds):
                    for index, (url, bearer) in enumerate(runs):
                        times[index] += asyncio.run(session_calls(url, bearer, calls // rounds))
            plain_ms, free_ms, ours_ms = (statistics.median(block) * 1000 for block in times)
            rows.append((name, plain_ms, free_ms, ours_ms))
    return rows


def overhead(rounds: int) -> tuple[float, float]:
    """Microseconds per request, in-process: a whoami cache hit, and hub_auth's whole part of
    a request (the gate's check, then ``verify_token`` building the access token)."""
    from hub_auth.mcp import HubTokenVerifier

    async def measure() -> tuple[float, float]:
        async with FakeHub() as hub:
            token = hub.add_token(user=FakeUser(name="ada", orgs=["bench"]))
            async with _new_auth(hub) as auth:
                verifier = HubTokenVerifier(auth)

                async def app(scope: Any, receive: Any, send: Any) -> None:
                    await verifier.verify_token(token)

                gate = verifier.wrap(app)
                scope = {
                    "type": "http",
                    "headers": [(b"authorization", f"Bearer {token}".encode())],
                }
                await auth.whoami(token)
                started = time.perf_counter()
                for _ in range(rounds):
                    await auth.whoami(token)
                hit = time.perf_counter() - started
                started = time.perf_counter()
                for _ in range(rounds):
                    await gate(scope, None, None)  # type: ignore[arg-type]
                whole = time.perf_counter() - started
        return hit / rounds * 1e6, whole / rounds * 1e6

    return asyncio.run(measure())


def run(*, users: int, calls: int, latency_calls: int) -> str:
    """Measure and return the report (Markdown)."""
    lines = [
        f"Hub requests for {users * calls:,} tool calls by {users} users "
        f"({users} sessions of {calls} calls, concurrently):",
        "",
        "| verifier | tool calls | Hub requests | per tool call |",
        "|---|---:|---:|---:|",
    ]
    counted = count_requests(users, calls)
    for name, tool_calls, requests in counted:
        lines.append(f"| {name} | {tool_calls:,} | {requests:,} | {requests / tool_calls:.3f} |")
    anchor = counted[0][2]
    ours = max(counted[1][2], counted[2][2], 1)
    lines += ["", f"FastMCP's verifier made {anchor / ours:,.0f}x the Hub requests.", ""]
    lines += [
        f"Tool-call latency, median of {latency_calls} sequential calls in one session "
        "(hub_auth with a warm cache):",
        "",
        "| framework | no auth (ms) | auth, free verifier (ms) | hub_auth (ms) "
        "| hub_auth / no auth | hub_auth / free verifier |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, plain, free, ours in latency(latency_calls):
        lines.append(
            f"| {name} | {plain:.2f} | {free:.2f} | {ours:.2f} | {ours / plain:.3f} "
            f"| {ours / free:.3f} |"
        )
    hit, whole = overhead(latency_calls * 20)
    lines += [
        "",
        f"In-process, per request: a whoami cache hit {hit:.1f} µs; hub_auth's whole part "
        f"(gate and verify_token) {whole:.1f} µs.",
    ]
    lines += [
        "",
        "The free verifier accepts any token at no cost: the difference between it and no auth "
        "is the framework's own auth middleware; between it and hub_auth, what hub_auth adds.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mcp", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args(argv)
    os.environ.pop("HF_ENDPOINT", None)  # every client here is given FakeHub's URL
    if args.smoke:
        print(run(users=2, calls=3, latency_calls=5))
    else:
        print(run(users=10, calls=100, latency_calls=300))


if __name__ == "__main__":
    main()
