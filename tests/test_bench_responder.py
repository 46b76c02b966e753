"""The benchmark's lean responder answers like FakeHub: same users, same errors, keep-alive."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks._fakehub import FakeHubProcess
from benchmarks._responder import ResponderProcess
from hub_auth import Err, ErrorKind, HubAuth, Ok


@pytest.fixture(scope="module")
def servers() -> object:
    with FakeHubProcess(3) as hub, ResponderProcess(3) as lean:
        yield hub, lean


async def test_same_users_as_fakehub(servers: tuple[FakeHubProcess, ResponderProcess]) -> None:
    hub, lean = servers
    assert hub.tokens == lean.tokens
    async with HubAuth(endpoint=hub.url) as slow, HubAuth(endpoint=lean.url) as fast:
        for token in lean.tokens:
            expected, got = await slow.whoami(token), await fast.whoami(token)
            assert isinstance(expected, Ok) and isinstance(got, Ok)
            assert got.value == expected.value


async def test_unknown_token_is_401(servers: tuple[FakeHubProcess, ResponderProcess]) -> None:
    _, lean = servers
    async with HubAuth(endpoint=lean.url) as auth:
        result = await auth.whoami("hf_" + "Z" * 34)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.UNAUTHORIZED


async def test_keep_alive_and_pipelining(servers: tuple[FakeHubProcess, ResponderProcess]) -> None:
    """Two requests in one write get two answers, in order, on one connection."""
    _, lean = servers
    host, port = lean.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (
        f"GET /api/whoami-v2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {lean.tokens[1]}\r\n\r\n"
        "GET /api/whoami-v2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n"
    )
    writer.write(request.encode())
    first = await reader.readuntil(b"\r\n\r\n")
    length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    second = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert first.startswith(b"HTTP/1.1 200 ") and b'"name":"bench-user-1"' in body
    assert second.startswith(b"HTTP/1.1 401 ")
