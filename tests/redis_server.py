"""A real ``redis-server`` for tests: started on a free 127.0.0.1 port in a temp dir.

``tests/conftest.py`` shares the ``redis_server`` fixture with every test module: one
``redis-server`` per test session, emptied (FLUSHALL) before each test. A test may ``stop()``
and ``start()`` it (same port); it is running again for the next test.

Without the ``redis-server`` binary the test is skipped, unless ``HUB_AUTH_REQUIRE_REDIS=1``
(as in CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server", "redis_session"]

_START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``stop()`` and ``start()`` again keep the same port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        log = self.workdir / "redis.log"
        options = {
            "bind": self.host,
            "port": str(self.port),
            "dir": str(self.workdir),
            "save": "",  # no snapshots, no append-only file: nothing outlives the test
            "appendonly": "no",
            "daemonize": "no",
            "logfile": str(log),
        }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(workdir: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("HUB_AUTH_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, and HUB_AUTH_REQUIRE_REDIS=1 requires it")
        pytest.skip(reason)
    for attempt in range(3):
        server = RedisServer(binary, workdir)
        try:
            server.start()
        except RuntimeError:
            # Another process may have taken the free port in between: try another.
            if attempt == 2:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _flush(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"FLUSHALL\r\n")
        reply = conn.recv(64)
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"FLUSHALL failed: {reply!r}")


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's ``redis-server``: started when a test first needs it, stopped at the end."""
    server = _start(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> Iterator[RedisServer]:
    """A running, empty ``redis-server`` on a loopback port (shared by the session's tests).

    The test may stop and restart it; it is started again afterwards if the test left it down.
    """
    if not redis_session.running:
        redis_session.start()
    _flush(redis_session.port)
    try:
        yield redis_session
    finally:
        if not redis_session.running:
            redis_session.start()
