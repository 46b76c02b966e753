"""An MCP server whose tools know who is calling, from the caller's Hugging Face token.

Serve it (``pip install 'hub_auth[mcp]' uvicorn``), against FakeHub for a try without an
account::

    python -m hub_auth.testing --seed-users 3 --tokens-out /tmp/tokens.json --port 8077 &
    HF_ENDPOINT=http://127.0.0.1:8077 uvicorn examples.mcp_server:app --port 8000

Without ``HF_ENDPOINT`` it asks the real Hub, which is also where MCP clients sign people in
(the server's ``/.well-known/oauth-protected-resource/mcp`` names it). ``EXAMPLE_MCP_URL`` is
the server's public URL (default ``http://127.0.0.1:8000``); ``EXAMPLE_TEAM_ORG`` restricts
the server to the members of one organisation.

Or run the whole story in one process (FakeHub, the server, the official MCP client)::

    python examples/mcp_server.py
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

from mcp.server.mcpserver import MCPServer

from hub_auth.mcp import HubTokenVerifier, auth_settings, current_user


def build_app(public_url: str, team_org: str | None = None) -> Any:
    """The server's ASGI app: MCP at ``/mcp``, the Hub as its authorization server."""
    # One verifier for the app: it checks tokens with the Hub's whoami through a cache (one
    # Hub request per token and minute, not per tool call) and closes its client on shutdown.
    verifier = HubTokenVerifier(require_orgs=[team_org] if team_org else ())
    server = MCPServer(
        "hub-tools",
        token_verifier=verifier,
        auth=auth_settings(f"{public_url}/mcp"),
        log_level="WARNING",
    )

    @server.tool()
    async def whoami() -> str:
        """Who is calling, and which organisations they belong to."""
        user = await current_user()  # from the request's token check: no Hub request
        if user is None:
            return "anonymous"
        orgs = ", ".join(user.organizations) or "no organisations"
        return f"{user.username} ({user.fullname}), member of: {orgs}"

    # wrap(): a token the Hub could not check (outage, rate limit) is a 503 with Retry-After,
    # not a 401 that would send the MCP client into a new sign-in.
    return verifier.wrap(server.streamable_http_app())


app = build_app(
    os.environ.get("EXAMPLE_MCP_URL", "http://127.0.0.1:8000"), os.environ.get("EXAMPLE_TEAM_ORG")
)


async def demo() -> None:
    """FakeHub, this server under uvicorn, and the official MCP client, in one process."""
    import httpx2
    import uvicorn
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from hub_auth.testing import FakeHub, FakeUser

    async with FakeHub() as hub:
        ada = hub.add_token(user=FakeUser(name="ada", fullname="Ada Lovelace", orgs=["engines"]))
        byron = hub.add_token(user=FakeUser(name="byron", orgs=["poets"]))
        os.environ["HF_ENDPOINT"] = hub.url  # the verifier's HubAuth reads it
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn's own
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = uvicorn.Config(build_app(url, team_org="engines"), log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[listener]))

        def http(token: str) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"})

        async with (
            http(ada) as client,
            Client(streamable_http_client(f"{url}/mcp", http_client=client)) as mcp,
        ):
            for _ in range(10):
                result = await mcp.call_tool("whoami", {})
            print(result.content[0].text)  # type: ignore[union-attr]
        print(f"10 tool calls, {hub.request_count} Hub request")

        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        headers = {"accept": "application/json, text/event-stream"}
        async with http(byron) as client:
            answer = await client.post(f"{url}/mcp", json=initialize, headers=headers)
            print(answer.status_code, json.loads(answer.content)["error_description"])
        hub.fail_next(503, count=3)  # the client retries twice, then gives up
        async with http(hub.add_token(name="mary", orgs=["engines"])) as client:
            answer = await client.post(f"{url}/mcp", json=initialize, headers=headers)
            print(answer.status_code, "Retry-After:", answer.headers["retry-after"])
        server.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(demo())
