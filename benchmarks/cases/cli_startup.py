"""Case 4: CLI start-up, ``hub-auth token|list`` against ``hf auth token|list``, same files.

Both read one temporary ``HF_HOME`` holding an active token and three named tokens in
``stored_tokens`` (the layout both tools share). Each command runs as a real subprocess,
timed with ``time.perf_counter`` from spawn to exit; the figure is the median of the runs.
huggingface_hub's once-a-day PyPI update check is switched off (``HF_HUB_DISABLE_UPDATE_CHECK``),
which only spares it time. Bytecode caches are written and used (``PYTHONDONTWRITEBYTECODE``
is unset for the children), as after a ``pip install``; one untimed run of each command warms
them and the page cache. ``python -c pass`` shows the interpreter's own floor.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import (
    TIMES,
    BenchContext,
    Row,
    bench_env,
    interleaved,
    pairwise_ratio,
    ratio_row,
    skipped,
    timing_row,
)

CASE = "4 CLI start-up"
_TIMEOUT = 60.0
_TARGET = f"≤ 0.25{TIMES}"


def _script(name: str) -> str | None:
    """A console script installed beside this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def _write_login(home: Path, tokens: list[str]) -> str:
    """Three named tokens, the second one active; the files huggingface_hub writes."""
    names = ["bench-read", "bench-write", "bench-ci"]
    sections = "".join(
        f"[{name}]\nhf_token = {token}\n\n" for name, token in zip(names, tokens, strict=True)
    )
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    stored = home / "stored_tokens"
    stored.write_text(sections, encoding="utf-8")
    stored.chmod(0o600)
    token_file = home / "token"
    token_file.write_text(tokens[1], encoding="utf-8")
    token_file.chmod(0o600)
    return tokens[1]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = _run(command, env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[-3:])} failed: {done.stderr.strip()[-500:]}")
    return elapsed


def run(ctx: BenchContext) -> list[Row]:
    hub_auth_cli = _script("hub-auth")
    hf_cli = _script("hf")
    if hf_cli is None:
        return [skipped(CASE, "hf auth token", "ms", "the `hf` command is not installed")]

    with tempfile.TemporaryDirectory(prefix="hub-auth-bench-cli-") as tmp:
        home = Path(tmp) / "hf_home"
        active = _write_login(home, list(ctx.tokens[:3]))
        # FakeHub's address: neither command needs the network, and nothing may leave loopback.
        env = bench_env(HF_HOME=str(home), HF_ENDPOINT=ctx.hub_url)

        hf_token = _run([hf_cli, "auth", "token"], env)
        if hf_token.returncode != 0 or hf_token.stdout.strip() != active:
            raise RuntimeError(f"`hf auth token` misbehaves: {hf_token.stderr.strip()[-500:]}")
        if hub_auth_cli is None:
            note = "not available yet (no `hub-auth` console script)"
            return [skipped(CASE, "hub-auth token", "ms", note, target=_TARGET)]
        probe = _run([hub_auth_cli, "token"], env)
        if probe.returncode != 0 or probe.stdout.strip() != active:
            detail = (probe.stderr.strip().splitlines() or ["wrong output"])[-1][:200]
            note = f"not available yet (`hub-auth token` does not work: {detail})"
            return [skipped(CASE, "hub-auth token", "ms", note, target=_TARGET)]

        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hub-auth token": [hub_auth_cli, "token"],
            "hf auth token": [hf_cli, "auth", "token"],
            "hub-auth list": [hub_auth_cli, "list"],
            "hf auth list": [hf_cli, "auth", "list"],
        }
        for command in commands.values():  # warm the page cache and the .pyc files
            _timed(command, env)
        timings = interleaved(
            ctx.sizes.cli_runs,
            {name: functools.partial(_timed, command, env) for name, command in commands.items()},
        )

    rows = [timing_row(CASE, name, values, 1e3, "ms") for name, values in timings.items()]
    for verb in ("token", "list"):
        ratios = pairwise_ratio(timings[f"hub-auth {verb}"], timings[f"hf auth {verb}"])
        rows.append(ratio_row(CASE, f"hub-auth {verb} ÷ hf auth {verb}", ratios, at_most=0.25))
    return rows
