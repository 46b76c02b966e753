"""pytest plugin: fail any test during which a token reached a log record or the terminal.

Enabled for the whole suite from ``tests/conftest.py`` (``pytest_plugins``). For every test:

- a handler on the root logger, at DEBUG, records every log record of setup, call and
  teardown; each record is formatted (message, arguments, traceback, extra attributes) and
  searched;
- the captured stdout and stderr of each phase, and the output of every
  ``click.testing.CliRunner.invoke`` (the CLI tests' output never reaches stdout), are
  searched, unless the test is marked ``@pytest.mark.prints_token`` (a CLI command whose job
  is to print the token).

What is searched for: anything token-shaped (``hf_`` followed by 20 or more letters and
digits, which is what ``make_token`` and real user tokens look like) and every token
registered with ``FakeHub.add_token`` (access tokens, ``hf_oauth_`` ones included) or issued
as a refresh token or a device code by ``FakeHub.oauth`` during the session, whatever its
shape, and every OIDC id token FakeHub mints (``hub.oauth.mint_id_token``, its GitHub
stand-in) with the GitHub request token that asks for them. A hit turns the phase's report
into a failure naming the place and the masked token, never the token.

The root logger is set to DEBUG while a test runs so that records a production logger
could emit at DEBUG are created and checked too; ``caplog`` therefore also sees DEBUG
records (filter on ``record.name``/``levelno`` when asserting on them).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import pytest

from hub_auth._tokens import mask_token

TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{20,}")
# Registered tokens shorter than this are left to the shape check: "hf_test" would match
# ordinary words and paths.
_MIN_REGISTERED_LENGTH = 12
_MARKER = "prints_token"
# LogRecord's own attributes; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}

_registered: set[str] = set()
# Output of CliRunner.invoke calls, in order; each phase checks what came since the last one.
_cli_outputs: list[tuple[str, str]] = []
_handler_key = pytest.StashKey["_Recorder"]()
_level_key = pytest.StashKey[int]()
_checked_key = pytest.StashKey[int]()
_formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")


class _Recorder(logging.Handler):
    """Keeps every record it is handed (the guard formats them at the end of each phase)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def register_token(token: str) -> None:
    """Search for ``token`` too, whatever its shape (FakeHub.add_token calls this)."""
    if isinstance(token, str) and len(token) >= _MIN_REGISTERED_LENGTH:
        _registered.add(token)


def find_tokens(text: str) -> list[str]:
    """The tokens in ``text``: token-shaped strings and registered tokens."""
    found = TOKEN_SHAPE.findall(text)
    found.extend(token for token in _registered if token in text)
    return found


@contextlib.contextmanager
def paused(item: pytest.Item) -> Iterator[None]:
    """Stop recording for ``item`` meanwhile (for a test that runs pytest in-process)."""
    recorder = item.stash.get(_handler_key, None)
    root = logging.getLogger()
    if recorder is not None:
        root.removeHandler(recorder)
    level = root.level
    try:
        yield
    finally:
        root.setLevel(level)
        if recorder is not None:
            root.addHandler(recorder)


def _record_text(record: logging.LogRecord) -> str:
    try:
        text = _formatter.format(record)
    except Exception:  # a broken record: search its raw parts instead
        text = f"{record.msg!r} {record.args!r}"
    extras = [
        f"{key}={value!r}" for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
    ]
    return " ".join([text, *extras])


def _leaks(sources: Iterable[tuple[str, str]]) -> list[str]:
    problems = []
    for where, text in sources:
        for token in dict.fromkeys(find_tokens(text)):
            problems.append(f"{where}: {mask_token(token)}")
    return problems


# -- hooks ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}: the test prints a token on purpose (its stdout/stderr and CliRunner "
        "output are not searched; its log records still are)",
    )
    _patch_fakehub(config)
    _patch_cli_runner(config)


def _register_secrets_of(
    config: pytest.Config,
    owner: type,
    name: str,
    secrets_in: Callable[[Any, tuple[Any, ...], dict[str, Any]], list[str]],
) -> None:
    """Wrap ``owner.name`` so the secrets ``secrets_in(result, args, kwargs)`` finds in what
    it returns are registered with the guard; the original is restored at the end."""
    original: Callable[..., Any] = getattr(owner, name)
    if getattr(original, "_secret_guard", False):
        return

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        for secret in secrets_in(result, args, kwargs):
            register_token(secret)
        return result

    wrapper._secret_guard = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)
    config.add_cleanup(lambda: setattr(owner, name, original))


def _returned(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    return [result]


def _github_secrets(env: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    fixed = kwargs.get("id_token")
    return [env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"], *([fixed] if fixed is not None else [])]


def _patch_fakehub(config: pytest.Config) -> None:
    """Make every token, refresh token, device code and OIDC id token FakeHub hands out (and
    its GitHub stand-in's request token) a secret the guard searches for."""
    from hub_auth.testing import FakeHub
    from hub_auth.testing._oauth import FakeOAuth

    _register_secrets_of(config, FakeHub, "add_token", _returned)
    _register_secrets_of(config, FakeOAuth, "mint_refresh_token", _returned)
    _register_secrets_of(config, FakeOAuth, "mint_id_token", _returned)
    _register_secrets_of(config, FakeOAuth, "_new_device_code", _returned)
    _register_secrets_of(config, FakeOAuth, "github_actions", _github_secrets)


def _patch_cli_runner(config: pytest.Config) -> None:
    """Keep what every ``CliRunner.invoke`` printed, for the guard to search."""
    try:
        from click.testing import CliRunner, Result
    except ImportError:  # click is an optional dependency
        return
    original: Callable[..., Result] = CliRunner.invoke
    if getattr(original, "_secret_guard", False):
        return

    def invoke(self: CliRunner, cli: Any, args: Any = None, *rest: Any, **kwargs: Any) -> Result:
        result = original(self, cli, args, *rest, **kwargs)
        command = args[0] if isinstance(args, list | tuple) and args else args
        # Only the subcommand in the label: the other arguments may be a token.
        label = f"CLI output of {command!s:.20}" if isinstance(command, str) else "CLI output"
        texts = [result.output]
        with contextlib.suppress(ValueError):  # stderr not captured separately
            texts.append(result.stderr)
        _cli_outputs.append((label, "\n".join(texts)))
        return result

    invoke._secret_guard = True  # type: ignore[attr-defined]
    invoke.__doc__ = original.__doc__
    CliRunner.invoke = invoke  # type: ignore[method-assign]

    def restore() -> None:
        CliRunner.invoke = original  # type: ignore[method-assign]

    config.add_cleanup(restore)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    recorder = _Recorder()
    root = logging.getLogger()
    item.stash[_handler_key] = recorder
    item.stash[_level_key] = root.level
    item.stash[_checked_key] = 0
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    _cli_outputs.clear()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        recorder = item.stash.get(_handler_key, None)
        if recorder is not None:
            root = logging.getLogger()
            root.removeHandler(recorder)
            root.setLevel(item.stash[_level_key])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    recorder = item.stash.get(_handler_key, None)
    if recorder is None:
        return report
    # Records since the last phase's check, then this phase's captured output.
    start = item.stash[_checked_key]
    records = recorder.records[start:]
    item.stash[_checked_key] = len(recorder.records)
    sources = [
        (f"log record {r.name}:{r.levelname} ({call.when})", _record_text(r)) for r in records
    ]
    cli_outputs = list(_cli_outputs)
    _cli_outputs.clear()
    if item.get_closest_marker(_MARKER) is None:
        sources.extend(
            (name, text)
            for name, text in report.sections
            if name.endswith((f"stdout {call.when}", f"stderr {call.when}"))
        )
        sources.extend((f"{label} ({call.when})", text) for label, text in cli_outputs)
    problems = _leaks(sources)
    if not problems:
        return report
    message = "secret guard: a token leaked during this test\n" + "\n".join(
        f"  - {problem}" for problem in problems
    )
    if report.outcome == "failed":
        report.sections.append(("secret guard", message))
    else:
        report.outcome = "failed"
        report.longrepr = message
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    return report
