"""A lean loopback whoami responder, in a process of its own: the server of client-vs-client cases.

FakeHub is an ``aiohttp.web`` application: it costs about 200 µs of CPU a request, and a
sequential client waits for it, so against FakeHub the clients' own differences drown in the
server's time (and in its noise). This responder is a plain ``asyncio.Protocol`` that answers
``GET /api/whoami-v2`` with bytes prepared at start: for each token, one HTTP/1.1 keep-alive
response whose body is the JSON FakeHub would send for that user (``FakeUser.body()``), and a
401 for any other token. It parses only what it needs (the end of each request's head and its
``Authorization`` line), so it answers in a few microseconds and the clients measured are what
the figures show. Behaviour cases (faults, rate limits, the cache's memory) stay on FakeHub.

    python -m benchmarks._responder TOKENS_JSON [--certfile PEM --keyfile PEM]

prints ``responder listening on http://127.0.0.1:PORT`` and serves until SIGTERM.
``ResponderProcess`` runs it (same interface as ``FakeHubProcess``: ``url``, ``tokens``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
from pathlib import Path

from benchmarks._fakehub import ServerProcess

__all__ = ["ResponderProcess", "canned_answers"]

_HEAD_END = b"\r\n\r\n"
_AUTH = b"\r\nauthorization: bearer "
_MAX_HEAD = 64 * 1024


def _response(status: str, body: bytes, request_id: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-Id: {request_id}\r\n"
        "Connection: keep-alive\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def canned_answers(users: dict[str, dict[str, object]]) -> dict[bytes, bytes]:
    """``{token bytes: full HTTP response}`` with FakeHub's whoami-v2 body for each user."""
    from hub_auth.testing import FakeUser

    answers: dict[bytes, bytes] = {}
    for index, (token, fields) in enumerate(users.items()):
        body = json.dumps(FakeUser(**fields).body(), separators=(",", ":")).encode()  # type: ignore[arg-type]
        answers[token.encode("ascii")] = _response("200 OK", body, f"Root=1-bench-{index:08x}")
    return answers


_UNAUTHORIZED = _response(
    "401 Unauthorized",
    b'{"error":"Invalid credentials in Authorization header"}',
    "Root=1-bench-401",
)
_NOT_FOUND = _response("404 Not Found", b'{"error":"Not Found"}', "Root=1-bench-404")


class _Whoami(asyncio.Protocol):
    __slots__ = ("_answers", "_buffer", "_transport")

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self._answers = answers
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        while (end := buffer.find(_HEAD_END)) >= 0:
            head, buffer = buffer[:end], buffer[end + 4 :]
            out.append(self._answer(head))
        if len(buffer) > _MAX_HEAD:
            assert self._transport is not None
            self._transport.close()
            return
        self._buffer = buffer
        if out:
            assert self._transport is not None
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _answer(self, head: bytes) -> bytes:
        if not head.startswith(b"GET /api/whoami-v2 "):
            return _NOT_FOUND
        lower = head.lower()
        start = lower.find(_AUTH)
        if start < 0:
            return _UNAUTHORIZED
        start += len(_AUTH)
        stop = head.find(b"\r\n", start)
        token = head[start:] if stop < 0 else head[start:stop]
        return self._answers.get(token.strip(), _UNAUTHORIZED)


async def _serve(answers: dict[bytes, bytes], context: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Whoami(answers), "127.0.0.1", 0, ssl=context, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if context is not None else "http"
    print(f"responder listening on {scheme}://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def _main(argv: list[str]) -> int:
    users = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    context = None
    if "--certfile" in argv:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certfile = argv[argv.index("--certfile") + 1]
        keyfile = argv[argv.index("--keyfile") + 1] if "--keyfile" in argv else None
        context.load_cert_chain(certfile, keyfile)
    asyncio.run(_serve(canned_answers(users), context))
    return 0


class ResponderProcess(ServerProcess):
    """``python -m benchmarks._responder`` with ``count`` users, on 127.0.0.1 and a free port."""

    banner = "responder listening on "
    what = "the lean responder"

    def command(self, tokens_file: Path) -> list[str]:
        return [sys.executable, "-m", "benchmarks._responder", str(tokens_file), *self._tls_args]


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
