"""Case 4: CLI commands, ``hub-auth token|list|switch|logout|whoami`` against ``hf auth ...``.

Both tools get the same set-up: one temporary ``HF_HOME`` holding an active token and three
named tokens in ``stored_tokens`` (the layout both tools share), ``HF_ENDPOINT`` pointing at
the benchmark's FakeHub (a process of its own on 127.0.0.1, which ``whoami`` asks; the other
commands need no network), and ``HOME`` set to the same temporary folder, so the git
credential step of ``logout`` (both tools run ``git credential reject``) never touches the
real user's credentials. The login files are written again before every run of every
command, untimed, so ``switch`` really switches (to ``bench-read``) and ``logout`` (no
arguments: every stored token, the active one and the git credential) always has something to
remove. Each command runs as a real subprocess, timed with ``time.perf_counter`` from spawn to
exit, in interleaved rounds (each round runs every command once, in rotating order); each
ratio is the median of the rounds' ratios. huggingface_hub's once-a-day PyPI update check is
switched off (``HF_HUB_DISABLE_UPDATE_CHECK``), which only spares it time. Bytecode caches
are written and used (``PYTHONDONTWRITEBYTECODE`` is unset for the children), as after a
``pip install``; one untimed run of each command warms them and the page cache, and checks
that both tools did the work (the token printed, the token switched, the files removed, the
user named). ``python -c pass`` shows the interpreter's own floor, and ``import click,
filelock`` what the CLI library and the file lock (which ``switch`` and ``logout`` need) cost
before hub_auth runs a line: its ratio to ``hf auth switch`` is the floor of those two
commands. Targets: ``token``,
``list``, ``switch`` and ``logout`` at most 0.2 times ``hf auth``'s wall time (issue 24),
``whoami`` at most 0.8 times (issue 23).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
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
    timed_run,
    timing_row,
)
from benchmarks._summary import Figure

CASE = "4 CLI commands"
_TIMEOUT = 60.0
_NAMES = ("bench-read", "bench-write", "bench-ci")
_ACTIVE = 1  # bench-write is the active token
_SWITCH_TO = 0  # switch makes bench-read the active one
LOCAL_TARGET = 0.2  # token, list, switch, logout (issue 24)
WHOAMI_TARGET = 0.8  # issue 23
_LIBRARIES = "python -c 'import click, filelock'"


@dataclass(frozen=True)
class _Verb:
    """One command of both tools: its arguments, its target, and how to tell it worked."""

    name: str
    args: tuple[str, ...]
    target: float
    figure: Figure
    # (stdout, HF_HOME after the run, the tokens) -> what is wrong, or "" when it worked.
    check: Callable[[str, Path, list[str]], str]


def _printed_active(stdout: str, home: Path, tokens: list[str]) -> str:
    return "" if stdout.strip() == tokens[_ACTIVE] else "did not print the active token"


def _listed_names(stdout: str, home: Path, tokens: list[str]) -> str:
    return "" if all(name in stdout for name in _NAMES) else "did not list the stored tokens"


def _switched(stdout: str, home: Path, tokens: list[str]) -> str:
    active = (home / "token").read_text(encoding="utf-8").strip()
    return "" if active == tokens[_SWITCH_TO] else f"did not make {_NAMES[_SWITCH_TO]} active"


def _logged_out(stdout: str, home: Path, tokens: list[str]) -> str:
    left = [name for name in ("token", "stored_tokens") if (home / name).exists()]
    return f"left {', '.join(left)} behind" if left else ""


def _named_user(stdout: str, home: Path, tokens: list[str]) -> str:
    return "" if f"bench-user-{_ACTIVE}" in stdout else "did not name the user"


_VERBS = (
    _Verb("token", ("token",), LOCAL_TARGET, Figure.CLI_TOKEN, _printed_active),
    _Verb("list", ("list",), LOCAL_TARGET, Figure.CLI_LIST, _listed_names),
    _Verb(
        "switch",
        ("switch", "--token-name", _NAMES[_SWITCH_TO]),
        LOCAL_TARGET,
        Figure.CLI_SWITCH,
        _switched,
    ),
    _Verb("logout", ("logout",), LOCAL_TARGET, Figure.CLI_LOGOUT, _logged_out),
    _Verb("whoami", ("whoami",), WHOAMI_TARGET, Figure.CLI_WHOAMI, _named_user),
)


def _script(name: str) -> str | None:
    """A console script installed beside this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def _write_login(home: Path, tokens: list[str]) -> str:
    """Three named tokens, the second one active; the files huggingface_hub writes."""
    sections = "".join(
        f"[{name}]\nhf_token = {token}\n\n" for name, token in zip(_NAMES, tokens, strict=True)
    )
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    stored = home / "stored_tokens"
    stored.write_text(sections, encoding="utf-8")
    stored.chmod(0o600)
    token_file = home / "token"
    token_file.write_text(tokens[_ACTIVE], encoding="utf-8")
    token_file.chmod(0o600)
    return tokens[_ACTIVE]


def _probe(
    command: list[str], env: dict[str, str], verb: _Verb, home: Path, tokens: list[str]
) -> str:
    """Run once (untimed, from fresh login files): what is wrong with the result, or ""."""
    _write_login(home, tokens)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:200]
    return verb.check(done.stdout, home, tokens)


def _fresh_run(command: list[str], env: dict[str, str], home: Path, tokens: list[str]) -> float:
    _write_login(home, tokens)  # untimed: every run starts from the same files
    return timed_run(command, env)


def run(ctx: BenchContext) -> list[Row]:
    hub_auth_cli = _script("hub-auth")
    hf_cli = _script("hf")
    if hf_cli is None:
        return [skipped(CASE, "hf auth token", "ms", "the `hf` command is not installed")]
    if hub_auth_cli is None:
        note = "not available yet (no `hub-auth` console script)"
        return [skipped(CASE, "hub-auth token", "ms", note, target=f"≤ {LOCAL_TARGET}{TIMES}")]

    tokens = list(ctx.tokens[:3])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hub-auth-bench-cli-") as tmp:
        home = Path(tmp) / "hf_home"
        env = bench_env(
            HF_HOME=str(home),
            HF_ENDPOINT=ctx.hub_url,
            HOME=tmp,
            XDG_CONFIG_HOME=str(Path(tmp) / ".config"),
            GIT_CONFIG_NOSYSTEM="1",
        )
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            _LIBRARIES: [sys.executable, "-c", "import click, filelock"],
        }
        measured: list[_Verb] = []
        for verb in _VERBS:
            hf_command = [hf_cli, "auth", *verb.args]
            wrong = _probe(hf_command, env, verb, home, tokens)
            if wrong:
                raise RuntimeError(f"`hf auth {verb.name}` misbehaves: {wrong}")
            ours = [hub_auth_cli, *verb.args]
            wrong = _probe(ours, env, verb, home, tokens)
            if wrong:
                note = f"not available yet (`hub-auth {verb.name}`: {wrong})"
                target = f"≤ {verb.target:g}{TIMES}"
                rows.append(skipped(CASE, f"hub-auth {verb.name}", "ms", note, target=target))
                continue
            measured.append(verb)
            commands[f"hub-auth {verb.name}"] = ours
            commands[f"hf auth {verb.name}"] = hf_command
        timings = interleaved(
            ctx.sizes.cli_runs,
            {
                name: functools.partial(_fresh_run, command, env, home, tokens)
                for name, command in commands.items()
            },
        )

    rows += [timing_row(CASE, name, values, 1e3, "ms") for name, values in timings.items()]
    if "hf auth switch" in timings:
        rows.append(
            ratio_row(
                CASE,
                f"{_LIBRARIES} ÷ hf auth switch (the floor of switch and logout)",
                pairwise_ratio(timings[_LIBRARIES], timings["hf auth switch"]),
            )
        )
    for verb in measured:
        ratios = pairwise_ratio(timings[f"hub-auth {verb.name}"], timings[f"hf auth {verb.name}"])
        rows.append(
            ratio_row(
                CASE,
                f"hub-auth {verb.name} ÷ hf auth {verb.name}",
                ratios,
                at_most=verb.target,
                headline=verb.figure,
            )
        )
    return rows
