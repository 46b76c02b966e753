"""FakeHub in a process of its own, so the server never shares the GIL with the client measured."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from benchmarks._common import bench_env
from hub_auth.testing import make_token

__all__ = ["FakeHubProcess", "ServerProcess", "bench_tokens"]

_ORGS = [f"lab-{index:02d}" for index in range(40)]
_START_TIMEOUT = 30.0


def bench_tokens(count: int) -> list[str]:
    """The tokens the benchmark's users hold; the same in every process and every run."""
    return [make_token(f"bench{index}") for index in range(count)]


def _users(tokens: list[str]) -> dict[str, dict[str, object]]:
    """Users shaped like the Hub's sample "write token, one organisation" body."""
    table: dict[str, dict[str, object]] = {}
    for index, token in enumerate(tokens):
        name = f"bench-user-{index}"
        table[token] = {
            "name": name,
            "email": f"{name}@example.com",
            "orgs": [{"name": _ORGS[index % len(_ORGS)], "role_in_org": "write"}],
            "token_name": f"bench-token-{index}",
        }
    return table


class ServerProcess:
    """A whoami server in a process of its own, with ``count`` users, on 127.0.0.1.

    With ``certfile`` and ``keyfile`` (PEM files) it serves https, and ``url`` says so.
    Subclasses give the ``command`` and the ``banner`` its first line starts with.
    """

    banner = ""
    what = "the server"

    def command(self, tokens_file: Path) -> list[str]:
        raise NotImplementedError

    def __init__(
        self, count: int, *, certfile: Path | None = None, keyfile: Path | None = None
    ) -> None:
        self.tokens = bench_tokens(count)
        self._tls_args = [] if certfile is None else ["--certfile", str(certfile)]
        if keyfile is not None:
            self._tls_args += ["--keyfile", str(keyfile)]
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="hub-auth-bench-")
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        tokens_file = Path(self._dir.name) / "tokens.json"
        tokens_file.write_text(json.dumps(_users(self.tokens)), encoding="utf-8")
        # A file, not a pipe: a pipe nobody reads would block the server once full.
        self._stderr_path = Path(self._dir.name) / "stderr.log"
        stderr = self._stderr_path.open("w", encoding="utf-8")
        process = subprocess.Popen(
            self.command(tokens_file),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=bench_env(),
        )
        stderr.close()
        self._process = process
        lines: queue.Queue[str] = queue.Queue()

        def read_first_line() -> None:
            assert process.stdout is not None
            lines.put(process.stdout.readline())

        threading.Thread(target=read_first_line, daemon=True).start()
        try:
            line = lines.get(timeout=_START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{self.what} did not start within 30 s") from None
        prefix = self.banner
        if not line.startswith(prefix):
            process.wait(timeout=10)
            log = self._stderr_path.read_text(encoding="utf-8")
            self.stop()
            raise RuntimeError(f"{self.what} failed to start: {line!r} {log[-2000:]}")
        self.url = line[len(prefix) :].strip()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeHubProcess(ServerProcess):
    """``python -m hub_auth.testing`` with ``count`` users, on 127.0.0.1 and a free port."""

    banner = "FakeHub listening on "
    what = "FakeHub"

    def command(self, tokens_file: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hub_auth.testing",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--tokens-file",
            str(tokens_file),
            *self._tls_args,
        ]
