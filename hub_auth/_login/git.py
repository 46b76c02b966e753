"""Store the token as a git credential, so git over HTTPS to the Hub uses it.

``git credential approve`` hands a credential to whichever credential helpers the user has
configured (``store``, ``cache``, ``osxkeychain``, ``manager`` ...); ``git credential reject``
asks them to forget it. The credential is written to git's **standard input**, never to its
command line or environment, where other local users could read it (``ps``,
``/proc/<pid>/environ``).

Outcomes:

* git stored (or forgot) the credential: ``Ok(GitCredentialOutcome(...))``.
* git is not installed, or no helper is configured: ``Ok`` with ``stored=False`` and a ``note``
  telling the user what to do. Logging in must not fail because git is absent.
* git ran but failed (bad config file, unparsable URL) or did not finish within ``timeout``:
  ``Err(HubAuthError(ErrorKind.STORAGE, ...))`` whose message quotes git's stderr with anything
  token-shaped masked. The caller decides whether that fails a login.

git runs in a subprocess with ``GIT_TERMINAL_PROMPT=0``, so it never waits on a terminal, in
a session of its own, so a timeout, Ctrl-C or a cancelled caller kills it together with any
credential helper it started. The work is written once, blocking (``approve_sync``,
``reject_sync``: what the CLI calls, with no event loop to start); the coroutines ``approve``,
``reject`` and ``list_credential_helpers`` run it in a worker thread, so the event loop is never
blocked.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import mask_token, scrub

__all__ = [
    "DEFAULT_GIT_TIMEOUT",
    "GitCredentialOutcome",
    "approve",
    "approve_sync",
    "list_credential_helpers",
    "reject",
    "reject_sync",
]

R = TypeVar("R")

DEFAULT_GIT_TIMEOUT = 15.0
"""Seconds an approve/reject (all its git calls together) may take; a helper may be slow."""

_STDERR_LIMIT = 500
"""At most this many characters of git's stderr go into an error message."""

_Action = Literal["approve", "reject"]

_NO_HELPER_NOTE: dict[_Action, str] = {
    "approve": (
        "No git credential helper is configured, so git did not keep the token. Run "
        "`git config --global credential.helper store` (or configure another credential.helper) "
        "and log in again to use the token for git over HTTPS."
    ),
    "reject": "No git credential helper is configured, so git holds no Hub credential to remove.",
}

_NO_GIT_NOTE: dict[_Action, str] = {
    "approve": (
        "git is not installed (or not on PATH), so the token was not stored as a git "
        "credential; install git to use the token for git over HTTPS."
    ),
    "reject": "git is not installed (or not on PATH); there is no git credential to remove.",
}


@dataclass(frozen=True, slots=True)
class GitCredentialOutcome:
    """What git did with the credential.

    Attributes:
        stored: ``True`` when ``git credential approve`` succeeded and at least one helper is
            configured to keep it. Always ``False`` after a reject: nothing is stored by it.
        helpers: The configured credential helpers, in the order git consults them.
        note: Advice for a person when nothing was stored or removed (no helper, no git).
    """

    stored: bool
    helpers: list[str]
    note: str | None = None


async def list_credential_helpers(
    url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    # A parameter rather than only the caller's cancel scope: a timeout must become an Err.
    timeout: float = DEFAULT_GIT_TIMEOUT,  # noqa: ASYNC109
) -> list[str]:
    """Return the credential helpers git would use, in order; empty when there are none.

    These are the values of ``credential.helper`` (an empty value clears those before it, as
    in git) followed, when ``url`` is given, by the most specific ``credential.<url>.helper``
    matching ``url``. Also empty when git is missing, fails or does not answer in time: this
    is a question, not an operation that can fail.

    Args:
        url: The remote the helpers are for, e.g. ``"https://huggingface.co"``.
        env: The environment git runs with; ``None`` inherits ``os.environ``.
        timeout: Seconds before giving up.
    """
    return await _in_thread(functools.partial(_list_helpers, url), _GitCalls(env, timeout))


def _list_helpers(url: str | None, git: _GitCalls) -> list[str]:
    try:
        return _read_helpers(url, git)
    except (OSError, TimeoutError, _GitFailed):
        return []


def approve_sync(
    endpoint: str,
    token: str,
    *,
    username: str = "hf_user",
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_GIT_TIMEOUT,
) -> Result[GitCredentialOutcome]:
    """Store ``token`` as the git password for ``endpoint`` with ``git credential approve``
    (blocking; from async code, ``await approve(...)``).

    Args:
        endpoint: The Hub's base URL, e.g. ``"https://huggingface.co"``.
        token: The access token; it goes to git's standard input only.
        username: The git username; the Hub ignores it, ``hf_user`` is what huggingface_hub uses.
        env: The environment git runs with (it replaces ``os.environ``, as ``subprocess``
            does); ``None`` inherits ``os.environ``. ``GIT_TERMINAL_PROMPT=0`` is always added.
        timeout: Seconds for all git calls together before returning ``Err``.

    Raises:
        ValueError: A field contains a newline or NUL, which would corrupt git's protocol.

    Example::

        match approve_sync("https://huggingface.co", token):
            case Ok(GitCredentialOutcome(stored=False, note=note)) if note:
                print(note)
    """
    return _approve(endpoint, token, username, _GitCalls(env, timeout))


def reject_sync(
    endpoint: str,
    *,
    username: str = "hf_user",
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_GIT_TIMEOUT,
) -> Result[GitCredentialOutcome]:
    """Make git's credential helpers forget the credential for ``endpoint`` and ``username``
    (blocking; from async code, ``await reject(...)``).

    Arguments are as for :func:`approve_sync`. ``stored`` is always ``False`` in the outcome;
    git does not say whether a helper actually held the credential.
    """
    return _reject(endpoint, username, _GitCalls(env, timeout))


async def approve(
    endpoint: str,
    token: str,
    *,
    username: str = "hf_user",
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_GIT_TIMEOUT,  # noqa: ASYNC109
) -> Result[GitCredentialOutcome]:
    """:func:`approve_sync` in a worker thread: the event loop keeps running meanwhile."""
    _check_fields(endpoint=endpoint, username=username, token=token)  # raised in this task
    return await _in_thread(
        functools.partial(_approve, endpoint, token, username), _GitCalls(env, timeout)
    )


async def reject(
    endpoint: str,
    *,
    username: str = "hf_user",
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_GIT_TIMEOUT,  # noqa: ASYNC109
) -> Result[GitCredentialOutcome]:
    """:func:`reject_sync` in a worker thread: the event loop keeps running meanwhile."""
    _check_fields(endpoint=endpoint, username=username)  # raised in this task
    return await _in_thread(functools.partial(_reject, endpoint, username), _GitCalls(env, timeout))


async def _in_thread(work: Callable[[_GitCalls], R], git: _GitCalls) -> R:
    """``work(git)`` in anyio's worker threads. A caller that gives up (cancelled, Ctrl-C) does
    not wait for it, and kills the git it is running."""
    import anyio.to_thread  # only for async callers: the CLI runs git without an event loop

    try:
        return await anyio.to_thread.run_sync(work, git, abandon_on_cancel=True)
    except BaseException:
        git.cancel()
        raise


def _approve(
    endpoint: str, token: str, username: str, git: _GitCalls
) -> Result[GitCredentialOutcome]:
    _check_fields(endpoint=endpoint, username=username, token=token)
    payload = f"url={endpoint}\nusername={username}\npassword={token}\n\n"
    return _update("approve", endpoint, payload, git, secret=token)


def _reject(endpoint: str, username: str, git: _GitCalls) -> Result[GitCredentialOutcome]:
    _check_fields(endpoint=endpoint, username=username)
    payload = f"url={endpoint}\nusername={username}\n\n"
    return _update("reject", endpoint, payload, git, secret=None)


def _update(
    action: _Action, endpoint: str, payload: str, git: _GitCalls, *, secret: str | None
) -> Result[GitCredentialOutcome]:
    try:
        helpers = _read_helpers(endpoint, git)
        if not helpers:
            # git would accept the credential and silently keep it nowhere.
            return Ok(GitCredentialOutcome(False, [], _NO_HELPER_NOTE[action]))
        command = ["credential", action]
        run = git.run(command, payload.encode())
        if run.returncode != 0:
            raise _GitFailed(command, run)
    except FileNotFoundError:
        return Ok(GitCredentialOutcome(False, [], _NO_GIT_NOTE[action]))
    except TimeoutError:
        return Err(
            HubAuthError(
                ErrorKind.STORAGE,
                f"git credential {action} did not finish within {git.seconds:g} s; a "
                "credential helper may be waiting for input",
            )
        )
    except OSError as exc:
        return Err(
            HubAuthError(ErrorKind.STORAGE, f"git could not be started: {exc.strerror or exc}")
        )
    except _GitFailed as failure:
        return Err(HubAuthError(ErrorKind.STORAGE, failure.describe(secret)))
    return Ok(GitCredentialOutcome(stored=action == "approve", helpers=helpers, note=None))


def _check_fields(**fields: str) -> None:
    # git's credential protocol is line-based: a newline in a value would let it add or
    # override keys (url=, host=), and git refuses NUL.
    for name, value in fields.items():
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        if any(char in value for char in "\n\r\0"):
            raise ValueError(f"{name} must not contain a newline or NUL character")
    if not fields["endpoint"]:
        raise ValueError("endpoint must not be empty")


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    child_env = dict(os.environ if env is None else env)
    child_env["GIT_TERMINAL_PROMPT"] = "0"
    return child_env


def _read_helpers(url: str | None, git: _GitCalls) -> list[str]:
    helpers: list[str] = []
    for value in _config_values(["config", "--get-all", "credential.helper"], git):
        # As in git, an empty value discards the helpers configured before it.
        helpers = [] if not value else [*helpers, value]
    if url is not None:
        # --get-urlmatch returns only the most specific match; enough to know one applies.
        command = ["config", "--get-urlmatch", "credential.helper", url]
        found = _config_values(command, git)
        helpers.extend(v for v in found if v and v not in helpers)
    return helpers


def _config_values(command: list[str], git: _GitCalls) -> list[str]:
    run = git.run(command)
    if run.returncode == 1:  # git config: the key is not set
        return []
    if run.returncode != 0:
        raise _GitFailed(command, run)
    return run.stdout.decode(errors="replace").splitlines()


@dataclass(frozen=True, slots=True)
class _GitRun:
    returncode: int
    stdout: bytes
    stderr: bytes


class _GitFailed(Exception):
    """git exited with an unexpected status; internal, turned into an ``Err``."""

    def __init__(self, command: Sequence[str], run: _GitRun) -> None:
        super().__init__(command, run.returncode)
        self.command = command
        self.run = run

    def describe(self, secret: str | None) -> str:
        detail = self.run.stderr.decode(errors="replace").strip()
        if secret:
            detail = detail.replace(secret, mask_token(secret))
        detail = scrub(detail)
        if len(detail) > _STDERR_LIMIT:
            detail = "..." + detail[-_STDERR_LIMIT:]
        name = " ".join(["git", *self.command[:2]])
        message = f"`{name}` failed with exit status {self.run.returncode}"
        return f"{message}: {detail}" if detail else message


class _GitCalls:
    """The git processes of one operation: their environment, their shared deadline, and the
    one running now, which ``cancel`` kills (from another thread: the caller gave up)."""

    def __init__(self, env: Mapping[str, str] | None, seconds: float) -> None:
        self.env = _child_env(env)
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = False

    def run(self, args: Sequence[str], stdin_data: bytes | None = None) -> _GitRun:
        """One git command, its pipes read together (a full stderr pipe must not stall git);
        ``TimeoutError`` past the deadline, or once cancelled."""
        remaining = self._deadline - time.monotonic()
        stdin = subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL
        with self._lock:
            if remaining <= 0 or self._cancelled:
                raise TimeoutError
            process = self._process = subprocess.Popen(
                ["git", *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                # A session of its own: a timeout kills git and the helpers it started,
                # which would otherwise keep the pipes open (and this call waiting).
                start_new_session=True,
            )
        with process:
            try:
                stdout, stderr = process.communicate(stdin_data, timeout=remaining)
            except BaseException as exc:  # the timeout, Ctrl-C: nothing of git stays behind
                _kill_session(process)
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise TimeoutError from None
                raise
            finally:
                with self._lock:
                    self._process = None
        return _GitRun(process.returncode, stdout, stderr)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._process is not None:
                _kill_session(self._process)


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    killpg = getattr(os, "killpg", None)  # POSIX; on Windows git alone is killed
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        if killpg is not None:
            killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
