"""hub_auth._login.git against the real git, in a throwaway HOME with the ``store`` helper."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from hub_auth._errors import ErrorKind
from hub_auth._login.git import (
    GitCredentialOutcome,
    approve,
    approve_sync,
    list_credential_helpers,
    reject,
    reject_sync,
)
from hub_auth._result import Err, Ok

ENDPOINT = "https://huggingface.co"
TOKEN = "hf_gitTestTokenAbCdEfGhIjKlMnOpQrStUv"
OTHER_TOKEN = "hf_anotherTokenInGitOutput0123456789"

REAL_GIT = shutil.which("git")
requires_git = pytest.mark.skipif(REAL_GIT is None, reason="git is not installed")


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A complete environment in which git sees only a fresh, empty configuration."""
    home = tmp_path / "git-home"  # conftest's autouse fixture owns tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "git-work"
    workdir.mkdir()
    # Outside any repository, so a repo's .git/config cannot add helpers.
    monkeypatch.chdir(workdir)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "git-xdg"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
        "LC_ALL": "C",
    }


def git_config(env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", "config", "--global", *args], env=env, check=True)


@pytest.fixture
def store_env(git_env: dict[str, str]) -> dict[str, str]:
    """``git_env`` with the plain-file ``store`` helper configured globally."""
    git_config(git_env, "credential.helper", "store")
    return git_env


def credentials_file(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".git-credentials"


def wrap_git(env: dict[str, str], tmp_path: Path, body: str) -> dict[str, str]:
    """Put a ``git`` shell script first on PATH; ``$REAL_GIT`` inside it is the real one."""
    assert REAL_GIT is not None
    bin_dir = tmp_path / "git-bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "git"
    script.write_text(f'#!/bin/sh\nREAL_GIT="{REAL_GIT}"\n{body}\n')
    script.chmod(0o755)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}


async def fill(env: dict[str, str]) -> str | None:
    """The password git hands out for the Hub, or None when it has none."""
    query = f"url={ENDPOINT}\nusername=hf_user\n\n".encode()
    done = await anyio.run_process(
        ["git", "credential", "fill"],
        input=query,
        env={**env, "GIT_TERMINAL_PROMPT": "0"},
        check=False,
    )
    if done.returncode != 0:  # git found nothing and was not allowed to prompt
        return None
    for line in done.stdout.decode().splitlines():
        if line.startswith("password="):
            return line.removeprefix("password=")
    return None


@requires_git
async def test_approve_then_fill_returns_the_token(store_env: dict[str, str]) -> None:
    result = await approve(ENDPOINT, TOKEN, env=store_env)

    assert result == Ok(GitCredentialOutcome(stored=True, helpers=["store"], note=None))
    assert await fill(store_env) == TOKEN


@requires_git
async def test_reject_removes_the_credential(store_env: dict[str, str]) -> None:
    assert (await approve(ENDPOINT, TOKEN, env=store_env)).unwrap().stored
    assert await fill(store_env) == TOKEN

    result = await reject(ENDPOINT, env=store_env)

    assert result == Ok(GitCredentialOutcome(stored=False, helpers=["store"], note=None))
    assert await fill(store_env) is None
    assert TOKEN not in credentials_file(store_env).read_text()


@requires_git
async def test_token_goes_through_stdin_only(store_env: dict[str, str], tmp_path: Path) -> None:
    argv_log = tmp_path / "argv.log"
    env_log = tmp_path / "env.log"
    env = wrap_git(
        store_env,
        tmp_path,
        f'printf "%s\\n" "$*" >> "{argv_log}"\nenv >> "{env_log}"\nexec "$REAL_GIT" "$@"',
    )

    result = await approve(ENDPOINT, TOKEN, env=env)

    assert result.unwrap().stored
    argv = argv_log.read_text()
    assert "credential approve" in argv  # the wrapper really stood in for git
    assert TOKEN not in argv
    environments = env_log.read_text()
    assert TOKEN not in environments
    assert "GIT_TERMINAL_PROMPT=0" in environments
    assert TOKEN in credentials_file(store_env).read_text()


@requires_git
async def test_no_helper_configured_is_ok_with_advice(git_env: dict[str, str]) -> None:
    result = await approve(ENDPOINT, TOKEN, env=git_env)

    match result:
        case Ok(GitCredentialOutcome(stored=False, helpers=[], note=str(note))):
            assert "credential.helper" in note
            assert TOKEN not in note
        case _:
            pytest.fail(f"unexpected {result!r}")
    assert await fill(git_env) is None

    rejected = (await reject(ENDPOINT, env=git_env)).unwrap()
    assert not rejected.stored
    assert rejected.note is not None


@pytest.mark.parametrize("operation", ["approve", "reject"])
async def test_git_missing_is_ok_with_a_note(tmp_path: Path, operation: str) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    env = {"PATH": str(empty_bin), "HOME": str(tmp_path / "git-home")}

    if operation == "approve":
        result = await approve(ENDPOINT, TOKEN, env=env)
    else:
        result = await reject(ENDPOINT, env=env)

    outcome = result.unwrap()
    assert outcome.stored is False
    assert outcome.helpers == []
    assert outcome.note is not None
    assert "git is not installed" in outcome.note
    assert await list_credential_helpers(ENDPOINT, env=env) == []


@requires_git
async def test_inherits_os_environ_by_default(
    store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in store_env.items():
        monkeypatch.setenv(name, value)

    assert (await approve(ENDPOINT, TOKEN)).unwrap().stored
    assert await fill(store_env) == TOKEN
    assert await list_credential_helpers() == ["store"]


@requires_git
async def test_event_loop_keeps_running_while_git_runs(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    # Each git call takes >= 0.2 s, so a blocked loop would stop the ticker for >= 0.4 s.
    env = wrap_git(store_env, tmp_path, 'sleep 0.2\nexec "$REAL_GIT" "$@"')
    ticks = 0
    result: object = None

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async def run_approve() -> None:
        nonlocal result
        result = await approve(ENDPOINT, TOKEN, env=env)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(ticker)
        await run_approve()
        task_group.cancel_scope.cancel()

    assert isinstance(result, Ok)
    assert result.value.stored
    assert ticks >= 10, f"the ticker ran only {ticks} times: the event loop was blocked"


@requires_git
async def test_hanging_git_times_out_as_err(store_env: dict[str, str], tmp_path: Path) -> None:
    env = wrap_git(store_env, tmp_path, "exec sleep 30")
    started = time.monotonic()

    result = await approve(ENDPOINT, TOKEN, env=env, timeout=0.5)

    assert time.monotonic() - started < 10
    match result:
        case Err(error):
            assert error.kind is ErrorKind.STORAGE
            assert "did not finish" in error.message
        case _:
            pytest.fail(f"unexpected {result!r}")


@requires_git
def test_a_timeout_kills_the_helpers_git_started(store_env: dict[str, str], tmp_path: Path) -> None:
    """A helper that hangs in a process of its own (not exec'd) keeps git's pipes open after
    git is killed: the timeout must not wait for it, and must not leave it running."""
    pid_file = tmp_path / "helper.pid"
    env = wrap_git(store_env, tmp_path, f'sleep 30 &\necho $! > "{pid_file}"\nwait')
    started = time.monotonic()

    result = reject_sync(ENDPOINT, env=env, timeout=0.5)

    assert time.monotonic() - started < 10
    assert isinstance(result, Err)
    assert "did not finish within 0.5 s" in result.error.message
    assert _gone_within(int(pid_file.read_text()), 5), "the helper outlived the timeout"


def _gone_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` ends within ``seconds`` (a killed process ends at once)."""
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a killed shell may linger as a zombie until init reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@requires_git
async def test_a_cancelled_caller_leaves_no_git_behind(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    """git runs in a worker thread: a caller that gives up does not wait for it, and kills it
    (with its helpers) instead of leaving it to its 30 s deadline."""
    pid_file = tmp_path / "helper.pid"
    env = wrap_git(store_env, tmp_path, f'sleep 30 &\necho $! > "{pid_file}"\nwait')
    started = time.monotonic()
    with anyio.move_on_after(0.5):
        await approve(ENDPOINT, TOKEN, env=env, timeout=30)
    assert time.monotonic() - started < 5
    assert _gone_within(int(pid_file.read_text()), 5), "git's helper outlived the cancelled call"


@requires_git
def test_the_blocking_functions_need_no_event_loop(store_env: dict[str, str]) -> None:
    approved = approve_sync(ENDPOINT, TOKEN, env=store_env)
    assert isinstance(approved, Ok) and approved.value.stored
    assert isinstance(reject_sync(ENDPOINT, env=store_env), Ok)
    assert anyio.run(fill, store_env) is None


@requires_git
@pytest.mark.parametrize(
    "token",
    [TOKEN, "not-hub-shaped-but-secret-0123456789"],
    ids=["hub-shaped", "other-shape"],
)
async def test_git_failure_is_err_with_scrubbed_stderr(
    store_env: dict[str, str], tmp_path: Path, token: str
) -> None:
    # A git that fails, echoing another token and what it got on stdin (the token) to stderr.
    env = wrap_git(
        store_env,
        tmp_path,
        f'if [ "$1" = credential ]; then echo "fatal: refused {OTHER_TOKEN}" >&2; cat >&2; '
        'exit 3; fi\nexec "$REAL_GIT" "$@"',
    )

    result = await approve(ENDPOINT, token, env=env)

    match result:
        case Err(error):
            assert error.kind is ErrorKind.STORAGE
            assert "git credential approve" in error.message
            assert "exit status 3" in error.message
            assert "fatal: refused" in error.message
            assert token not in str(error)
            assert token not in repr(error)
            assert OTHER_TOKEN not in str(error)
            assert token[-4:] in error.message  # masked, still recognisable
        case _:
            pytest.fail(f"unexpected {result!r}")


@requires_git
async def test_broken_git_config_is_err(git_env: dict[str, str]) -> None:
    (Path(git_env["HOME"]) / ".gitconfig").write_text("this is [not a config\n")

    result = await approve(ENDPOINT, TOKEN, env=git_env)

    match result:
        case Err(error):
            assert error.kind is ErrorKind.STORAGE
            assert "bad config" in error.message
        case _:
            pytest.fail(f"unexpected {result!r}")
    assert await list_credential_helpers(env=git_env) == []


@requires_git
async def test_list_credential_helpers_follows_git_rules(git_env: dict[str, str]) -> None:
    assert await list_credential_helpers(ENDPOINT, env=git_env) == []

    # An empty value discards the helpers before it.
    git_config(git_env, "--add", "credential.helper", "cache")
    git_config(git_env, "--add", "credential.helper", "")
    git_config(git_env, "--add", "credential.helper", "store")
    assert await list_credential_helpers(env=git_env) == ["store"]

    git_config(git_env, f"credential.{ENDPOINT}.helper", "cache --timeout=60")
    git_config(git_env, "credential.https://example.com.helper", "elsewhere")
    assert await list_credential_helpers(env=git_env) == ["store"]
    assert await list_credential_helpers(ENDPOINT, env=git_env) == ["store", "cache --timeout=60"]


@requires_git
async def test_url_specific_helper_alone_is_enough(git_env: dict[str, str]) -> None:
    path = Path(git_env["HOME"]) / "hub-credentials"
    git_config(git_env, f"credential.{ENDPOINT}.helper", f"store --file={path}")

    outcome = (await approve(ENDPOINT, TOKEN, env=git_env)).unwrap()

    assert outcome.stored
    assert outcome.helpers == [f"store --file={path}"]
    assert TOKEN in path.read_text()


@pytest.mark.parametrize(
    "call",
    [
        lambda: approve(ENDPOINT, TOKEN + "\nurl=https://evil.example"),
        lambda: approve(ENDPOINT + "\nhost=evil.example", TOKEN),
        lambda: approve(ENDPOINT, TOKEN, username="a\0b"),
        lambda: reject(ENDPOINT, username="hf_user\r\npassword=x"),
        lambda: approve("", TOKEN),
    ],
)
async def test_protocol_breaking_input_raises(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"newline|empty") as excinfo:
        await call()  # type: ignore[misc]
    assert TOKEN not in str(excinfo.value)
