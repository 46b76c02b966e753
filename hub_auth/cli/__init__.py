"""The ``hub-auth`` command: log in, inspect and switch Hugging Face tokens from a shell.

Installed with the ``cli`` extra (``pip install 'hub_auth[cli]'``)::

    hub-auth login [--device | --token T] [--add-to-git-credentials] [--force]
    hub-auth whoami [--format human|json|quiet]
    hub-auth token
    hub-auth list [--format human|json|quiet]
    hub-auth switch [--token-name NAME] [--add-to-git-credentials]
    hub-auth logout [--token-name NAME]
    hub-auth demo

It reads and writes the files ``hf auth`` uses, so the two commands can be mixed freely.

A command is often run from scripts, so start-up time matters: this module imports only click
and the standard library (plus hub_auth's tiny result, error and prompt modules) at the top.
The commands that only touch local files (``token``, ``list``, ``switch``, ``logout``) run the
operations of ``_login.files``, shared with ``HubAuth``, and import neither aiohttp nor
pydantic (their results are the dataclasses of ``_login.outcomes``); ``login`` and ``whoami``
import the client when they run, and ``login --device`` uses the client's own interactive
device login. Prompts live in ``_login.prompt``.

Output rules: results go to stdout, notes and errors to stderr. An error is one sentence
with exit status 1 (click's usage errors keep status 2), never a traceback. ``hub-auth
token`` is the only command that prints a token, and only one that passes the format check
(a token file or ``HF_TOKEN`` holding escape sequences is refused, status 1); everything else
shows it masked, usage errors included (``hub-auth login hf_...``). Text from the Hub or
from ``stored_tokens`` is printed with control characters escaped
(``_login.prompt.terminal_text``), so no escape sequence reaches the terminal; ``--json``
output is JSON-escaped.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

try:
    import click
except ImportError:  # installed without the extra: say how to get it, not a traceback
    sys.stderr.write("hub-auth needs the 'cli' extra: pip install 'hub_auth[cli]'\n")
    raise SystemExit(1) from None

from hub_auth import __version__
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._login.prompt import terminal_text
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import check_format, scrub

if TYPE_CHECKING:
    from datetime import datetime

    from hub_auth._login.git import GitCredentialOutcome
    from hub_auth._login.store import TokenStore
    from hub_auth._models import UserInfo
    from hub_auth._settings import Settings

__all__ = ["main"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# -- output helpers --------------------------------------------------------------------------


def _marks() -> tuple[str, str]:
    """Check and cross marks, or plain words when stdout cannot encode them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "OK", "FAILED"
    return "✓", "✗"


# Every line below goes through terminal_text: it may quote the Hub or stored_tokens.


def _colour() -> bool | None:
    """``False`` with NO_COLOR set (https://no-color.org); else click decides (a terminal)."""
    return False if os.environ.get("NO_COLOR") else None


_FORMAT_KEY = "hub_auth.format"


def _format() -> str:
    """The command's ``--format``: ``human`` (the default), ``json`` or ``quiet``."""
    ctx = click.get_current_context(silent=True)
    return str(ctx.meta.get(_FORMAT_KEY, "human")) if ctx is not None else "human"


def _set_format(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if param.name == "as_json":
        if value:
            ctx.meta[_FORMAT_KEY] = "json"
    elif value != "human" or _FORMAT_KEY not in ctx.meta:  # --json given before --format
        ctx.meta[_FORMAT_KEY] = value


def _format_option(command: F) -> F:
    """``--format human|json|quiet`` and its alias ``--json`` on a command that prints."""
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_set_format,
        help="The same as --format json.",
    )(command)
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["human", "json", "quiet"]),
        default="human",
        show_default=True,
        expose_value=False,
        callback=_set_format,
        help="human: sentences (colour on a terminal unless NO_COLOR is set); json: one JSON "
        "document on stdout; quiet: only what a script needs, or nothing.",
    )(command)


def _done(message: str) -> None:
    """A success line with a green check mark, in the human format only."""
    if _format() == "human":
        mark = click.style(_marks()[0], fg="green", bold=True)
        click.echo(f"{mark} {terminal_text(message)}", color=_colour())


def _outcome(message: str, data: dict[str, Any], quiet: str | None = None) -> None:
    """A command's result: ``message`` (human), ``data`` as JSON, or ``quiet`` (or nothing)."""
    match _format():
        case "json":
            import json

            click.echo(json.dumps(data, indent=2))
        case "quiet":
            if quiet is not None:
                click.echo(terminal_text(quiet))
        case _:
            _done(message)


def _note(message: str) -> None:
    click.echo(f"note: {terminal_text(message)}", err=True)


class _WarningHandler(logging.Handler):
    """hub_auth's logged warnings (plain http to a remote Hub) as ``warning: ...`` lines.

    Without a handler, Python's last-resort one prints the bare message; the CLI's notes all
    carry a prefix. Written to the stderr of the moment (click's test runner swaps it).
    """

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {terminal_text(record.getMessage())}", err=True)


def _show_warnings(ctx: click.Context) -> None:
    """Show hub_auth's warnings with the prefix while this command runs."""
    logger = logging.getLogger("hub_auth")
    handler = _WarningHandler(logging.WARNING)
    logger.addHandler(handler)
    ctx.call_on_close(lambda: logger.removeHandler(handler))


class _Error(click.ClickException):
    """click's one-line error, with ``✗ Error:`` in red on a terminal (``✗`` as ``✓`` on
    success; no colour with NO_COLOR); piped, the line stays the plain ``Error: ...``."""

    def show(self, file: Any = None) -> None:
        label = click.style("Error:", fg="red", bold=True)
        if _stderr_is_terminal():
            label = f"{click.style(_marks()[1], fg='red', bold=True)} {label}"
        click.echo(f"{label} {self.format_message()}", err=True, color=_colour())


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def _error(message: str | HubAuthError) -> click.ClickException:
    return _Error(terminal_text(str(message)))


def _fail(message: str | HubAuthError) -> NoReturn:
    raise _error(message)


_TOKEN_ARGUMENT_ADVICE = (
    "; a token on the command line shows in the process list and the shell history: "
    "use `hub-auth login --token -` and paste it on standard input"
)


def _shown_safely(exc: click.ClickException) -> click.ClickException:
    """One of click's own errors, with tokens masked and control characters escaped.

    click quotes what it did not understand (``No such command 'hf_...'``, ``Got unexpected
    extra argument (hf_...)``): a token given as an argument by mistake must not be echoed.
    An error that needs no change is kept as it is (some, like the help shown for a bare
    ``hub-auth``, display themselves in their own way).
    """
    original = exc.format_message()
    message = "\n".join(terminal_text(line) for line in original.split("\n"))
    if message == original:
        return exc
    if not isinstance(exc, click.UsageError):
        return click.ClickException(message)  # status 1, as any ClickException of click
    if scrub(original) != original:
        message += _TOKEN_ARGUMENT_ADVICE
    return click.UsageError(message, ctx=exc.ctx)


def _unwrap(result: Result[T], hint: str | None = None) -> T:
    match result:
        case Ok(value):
            return value
        case Err(error):
            _fail(f"{error}. {hint}" if hint else error)
    raise AssertionError("unreachable")  # pragma: no cover


def _os_error_text(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Globals:
    endpoint: str | None


def _endpoint_option(command: F) -> F:
    """``--endpoint`` on a subcommand too, so ``hub-auth login --endpoint URL`` works."""
    return click.option(
        "--endpoint",
        metavar="URL",
        help="The Hub's URL (default: --endpoint before the command, HF_ENDPOINT, "
        "https://huggingface.co).",
    )(command)


def _settings(ctx: click.Context, endpoint: str | None) -> Settings:
    from hub_auth._settings import Settings

    given = ctx.find_object(_Globals)
    chosen = endpoint or (given.endpoint if given is not None else None)
    try:
        return Settings.resolve(endpoint=chosen, endpoint_source="--endpoint" if chosen else None)
    except ValueError as exc:  # its one line names the source (--endpoint or HF_ENDPOINT)
        _fail(str(exc))


def _local_store() -> TokenStore:
    """The login files, for commands that do not talk to the Hub."""
    from hub_auth._login.store import TokenStore
    from hub_auth._settings import DEFAULT_ENDPOINT, Settings

    # The endpoint plays no part in reading the files: a malformed HF_ENDPOINT must not
    # stop `hub-auth token`.
    return TokenStore(Settings.resolve(endpoint=DEFAULT_ENDPOINT).token_path)


def _report_git(result: Result[GitCredentialOutcome]) -> None:
    match result:
        case Ok(outcome) if outcome.stored:
            _done(f"token added to git credentials (helper: {', '.join(outcome.helpers)})")
        case Ok(outcome) if outcome.note:
            _note(outcome.note)
        case Err(error):
            _note(f"the token was not added to git credentials: {error}")
        case _:
            pass


# -- the command group -----------------------------------------------------------------------


class _Group(click.Group):
    """A group whose errors are one safe line: no traceback, no token, no escape sequence."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:  # `hub-auth --hf_...`
            raise _shown_safely(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a command's, or a subcommand's usage error
            raise _shown_safely(exc) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click silences a closed pipe (`hub-auth list | head -1`) itself
            raise _error(_os_error_text(exc)) from None
        except HubAuthError as exc:  # an Err unwrapped somewhere: still a message, not a trace
            raise _error(exc) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint",
    metavar="URL",
    help="The Hub's URL (default: HF_ENDPOINT, else https://huggingface.co).",
)
@click.version_option(__version__, "--version", prog_name="hub-auth")
@click.pass_context
def main(ctx: click.Context, endpoint: str | None) -> None:
    """Log in to the Hugging Face Hub and manage your access tokens.

    Uses the same files as `hf auth` ($HF_HOME/token and $HF_HOME/stored_tokens).
    """
    ctx.obj = _Globals(endpoint=endpoint)
    _show_warnings(ctx)


# -- commands that need the Hub --------------------------------------------------------------


@main.command()
@click.option(
    "--token",
    metavar="TOKEN",
    help="The access token; '-' reads it from standard input. Without it, a terminal "
    "offers a menu: log in with your browser (the default) or paste a token (hidden input).",
)
@click.option(
    "--add-to-git-credentials",
    "--add-to-git-credential",
    "add_to_git",
    is_flag=True,
    help="Also store the token with git's credential helper (for git over HTTPS).",
)
@click.option("--force", is_flag=True, help="Ask for a token even when a valid one is active.")
@click.option(
    "--device",
    is_flag=True,
    help="Log in with your browser (OAuth device code), also without a terminal: prints a URL "
    "and a code to enter there, then waits.",
)
@_format_option
@_endpoint_option
@click.pass_context
def login(
    ctx: click.Context,
    token: str | None,
    add_to_git: bool,
    force: bool,
    device: bool,
    endpoint: str | None,
) -> None:
    """Log in: with your browser (default on a terminal) or an access token.

    On a terminal, without --token or --device, asks how: 1. with your browser (the
    default: a URL and a code to enter there) or 2. paste a token (hidden input). The token
    is checked with the Hub and made the active login; a pasted token the Hub accepted is
    then offered to git's credential helper (asked, default no).
    """
    import asyncio

    from hub_auth._client import HubAuth
    from hub_auth._tokens import clean_token

    settings = _settings(ctx, endpoint)
    if device:
        if token is not None:
            raise click.UsageError("--device and --token cannot be used together")
        _device_login(settings, add_to_git)
        return
    if token is not None:
        if token != "-":
            _note(
                "a token given with --token shows in the process list and the shell "
                "history; `--token -` reads it from standard input instead"
            )
        # Surrounding whitespace is pasted by accident; huggingface_hub strips it too.
        given = token
        token = clean_token(sys.stdin.readline() if given == "-" else given)
        if token is None:
            where = "standard input held no token" if given == "-" else "the token is empty"
            _fail(f"--token was given but {where}")

    async def run() -> Result[Any]:
        async with HubAuth(endpoint=settings.endpoint) as auth:
            return await auth.login(token, add_to_git_credentials=add_to_git, force=force)

    result = asyncio.run(run()) if token is not None else _run_prompting(run)
    if isinstance(result, Err) and result.error.kind is ErrorKind.NO_TOKEN and token is None:
        from hub_auth._login.prompt import stdin_is_terminal

        if not stdin_is_terminal():
            _fail(
                "no token given and standard input is not a terminal: pipe the token to "
                "`hub-auth login --token -`, or log in with your browser: "
                "`hub-auth login --device`"
            )
    if isinstance(result, Err) and result.error.kind not in (ErrorKind.NO_TOKEN, ErrorKind.STORAGE):
        _fail(f"{result.error}. Nothing was stored")
    info = _unwrap(result)
    data = _login_data(info, settings)
    if info.kept_existing:
        _outcome(
            f"already logged in as {info.user.username} (token {info.token_name!r}); "
            "kept it — use --force to log in with another token",
            data,
        )
        return
    _outcome(
        f"logged in as {info.user.username}; active token: {info.token_name!r} "
        f"({settings.token_path})",
        data,
    )
    for note in info.notes:
        _note(note)


_DEVICE_LIBRARY_ADVICE = "; start a new login"


def _login_data(info: Any, settings: Settings) -> dict[str, Any]:
    """``login``'s result for --format json."""
    return {
        "username": info.user.username,
        "token_name": info.token_name,
        "kept_existing": info.kept_existing,
        "token_path": str(settings.token_path),
    }


def _device_login(settings: Settings, add_to_git: bool) -> None:
    """``hub-auth login --device``: print the URL and the code, wait with dots, store."""
    import asyncio

    from hub_auth._client import HubAuth, interactive_device_login

    async def run() -> Result[Any]:
        async with HubAuth(endpoint=settings.endpoint) as auth:
            return await interactive_device_login(auth, add_to_git_credentials=add_to_git)

    try:
        result = asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("Login cancelled: nothing was stored.", err=True)
        raise SystemExit(1) from None
    if isinstance(result, Err):
        advice = {
            ErrorKind.ACCESS_DENIED: "run `hub-auth login --device` again to retry",
            ErrorKind.EXPIRED: "run `hub-auth login --device` again for a new code",
        }.get(result.error.kind)
        if advice is None:
            _fail(f"{result.error}. Nothing was stored")
        # The library's own advice ("start a new login") in CLI terms, said once.
        what = str(result.error).partition(_DEVICE_LIBRARY_ADVICE)[0]
        _fail(f"{what}: {advice}; nothing was stored")
    info = result.value
    _outcome(
        f"Login successful: logged in as {info.user.username}; active token: "
        f"{info.token_name!r} ({settings.token_path})",
        _login_data(info, settings),
    )
    for note in info.notes:
        _note(note)


def _run_prompting(run: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``run()``, which may prompt on the terminal; Ctrl-C ends with status 1.

    ``HubAuth.login`` asks through ``_login.prompt`` (the token, then, once the Hub has
    accepted it, the git question), which restores the terminal's settings itself when Ctrl-C
    cancels the wait; here the interrupt becomes a message and status 1.
    """
    import asyncio

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("\nAborted!", err=True)
        raise SystemExit(1) from None


@main.command()
@_format_option
@_endpoint_option
@click.pass_context
def whoami(ctx: click.Context, endpoint: str | None) -> None:
    """Show who the token in use belongs to.

    --format json prints hub_auth's UserInfo (stable snake_case keys, listed in
    docs/cli.md), not the Hub's raw answer; --format quiet prints the username only.
    """
    import asyncio
    import json

    from hub_auth._client import HubAuth
    from hub_auth._settings import env_token

    settings = _settings(ctx, endpoint)

    async def run() -> Result[Any]:
        async with HubAuth(endpoint=settings.endpoint) as auth:
            return await auth.whoami()

    found = env_token(os.environ)
    oidc = os.environ.get("HF_OIDC_RESOURCE")
    if oidc:
        source = f"the OIDC exchange for HF_OIDC_RESOURCE={oidc}"
    else:
        source = found[0] if found else f"the token file {settings.token_path}"
    result = asyncio.run(run())
    if isinstance(result, Err):
        _fail(_whoami_advice(result.error, source, env_name=None if oidc else _env_name(found)))
    user = result.value
    if _format() == "json":
        click.echo(json.dumps(user.model_dump(mode="json"), indent=2))
        return
    if _format() == "quiet":
        _echo(user.username)
        return
    who = user.username + (f" ({user.fullname})" if user.fullname else "")
    _echo(who + (f" <{user.email}>" if user.email else ""))
    if user.organizations:
        _echo(f"  orgs:     {', '.join(user.organizations)}")
    if user.token is not None:
        name = user.token.display_name or "(no name: an OAuth or app token)"
        role = f", role {user.token.role}" if user.token.role else ""
        _echo(f"  token:    {name}{role}")
    _echo(f"  from:     {source}")
    expires, refreshable = _expiry_in_use(settings, user, from_file=found is None)
    if expires is not None:
        if expires.timestamp() <= time.time():
            when = " (expired)"
        else:
            when = " (refreshed automatically before then)" if refreshable else ""
        _echo(f"  expires:  {expires:%Y-%m-%d %H:%M} UTC{when}")
    _echo(f"  endpoint: {settings.endpoint}")


def _env_name(found: tuple[str, str] | None) -> str | None:
    return found[0] if found else None


def _whoami_advice(error: HubAuthError, source: str, *, env_name: str | None) -> str:
    """The failure of `hub-auth whoami` with what a person at the terminal can do about it."""
    if error.kind is ErrorKind.NO_TOKEN:
        return "not logged in: run `hub-auth login`, or set HF_TOKEN to a token"
    if error.kind is ErrorKind.OFFLINE:
        return f"{error}; unset HF_HUB_OFFLINE to reach the Hub"
    if error.kind not in (ErrorKind.INVALID_TOKEN, ErrorKind.UNAUTHORIZED):
        return str(error)
    # Refused (malformed: never sent) or rejected by the Hub: either way, name the source.
    what = "was rejected" if error.kind is ErrorKind.UNAUTHORIZED else "was refused"
    if env_name is not None:
        # `hub-auth login` cannot help: the variable overrides whatever it stores.
        return (
            f"{error}. The token in {env_name} {what}: fix it, or unset {env_name} "
            "to use your stored login"
        )
    return f"{error}. The token from {source} {what}: run `hub-auth login`"


def _expiry_in_use(
    settings: Settings, user: UserInfo, *, from_file: bool
) -> tuple[datetime | None, bool]:
    """When the token ``whoami`` used expires, and whether hub_auth refreshes it.

    For the token file's token, its ``stored_tokens`` entry says (an OAuth login: it is
    refreshed before it expires, at the Hub that issued it only); otherwise the Hub's
    ``auth.expiresAt``, if it sent one.
    """
    from hub_auth._login.store import TokenStore, entry_expires_at, entry_token
    from hub_auth._oauth.refresh import refreshes_at

    hub_says = user.token.expires_at if user.token is not None else None
    if not from_file:
        return hub_says, False
    store = TokenStore(settings.token_path)
    # Read after whoami: a refresh it made has rewritten both files.
    active = store.read_active().unwrap_or(None)
    for fields in store.read_entries().unwrap_or({}).values():
        stored = entry_expires_at(fields)
        if active is not None and entry_token(fields) == active and stored is not None:
            return stored, bool(fields.get("refresh_token")) and refreshes_at(
                fields, settings.endpoint
            )
    return hub_says, False


def _echo(line: str) -> None:
    """One line of a result on stdout, made safe to show (it may quote the Hub)."""
    click.echo(terminal_text(line))


# -- commands that touch only local files (no aiohttp) ---------------------------------------


@main.command()
@click.pass_context
def token(ctx: click.Context) -> None:
    """Print the token in use to stdout (HF_TOKEN, else the active login).

    With HF_OIDC_RESOURCE set (CI, "Trusted Publishers"), prints the short-lived token
    exchanged for the CI's OIDC id token instead, as `hf auth token` does.

    The only command that prints a token unmasked, e.g. for
    `curl -H "Authorization: Bearer $(hub-auth token)"`. A value that is not a Hub token
    (control characters, spaces, another prefix) is not printed: exit status 1.
    """
    from hub_auth._settings import env_token, oidc_resource

    if oidc_resource(os.environ) is not None:
        _print_token(_oidc_token(ctx), "the OIDC token exchange")
        return
    if (found := env_token(os.environ)) is not None:
        _print_token(found[1], found[0])
        return
    store = _local_store()
    active = _unwrap(store.read_active())
    if active is None:
        _fail(
            f"not logged in: HF_TOKEN is not set and there is no token in {store.token_path}. "
            "Log in with `hub-auth login`"
        )
    _print_token(active, f"the token file {store.token_path}")


def _print_token(token: str, source: str) -> None:
    """The one place a token is printed (asked for), and only one that looks like a token:
    anything else (escape sequences for the terminal: OSC 52 clipboard writes, screen
    clears, window titles) is refused with status 1 and never echoed."""
    if (problem := check_format(token)) is not None:
        _fail(f"the token from {source} is not a Hub token ({problem}); it was not printed")
    click.echo(token)


def _oidc_token(ctx: click.Context) -> str:
    """The token exchanged for the CI's OIDC id token (needs the network stack)."""
    import asyncio

    from hub_auth._client import HubAuth

    settings = _settings(ctx, None)

    async def run() -> Result[Any]:
        async with HubAuth(endpoint=settings.endpoint) as auth:
            return await auth.get_token()

    exchanged = _unwrap(
        asyncio.run(run()),
        "HF_OIDC_RESOURCE is set, so `hub-auth token` prints the token exchanged for the "
        "CI's OIDC id token; fix the above or unset HF_OIDC_RESOURCE",
    )
    return str(exchanged.get_secret_value())


@main.command("list")
@_format_option
@_endpoint_option
@click.pass_context
def list_(ctx: click.Context, endpoint: str | None) -> None:
    """List the stored tokens (masked) and when they expire; `*` marks the active one.

    --format quiet prints the names only, one a line.
    """
    from hub_auth._login.files import list_logins

    if endpoint is not None:  # taken as by every command; checked, though no Hub is asked
        _settings(ctx, endpoint)
    store = _local_store()
    logins = _unwrap(list_logins(store, os.environ))
    for note in logins.notes:
        _note(note)
    entries = logins.tokens
    if _format() == "quiet":
        for entry in entries:
            _echo(entry.name)
    elif _format() == "json":
        import json

        click.echo(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
    elif not entries:
        _echo(f"No tokens stored in {store.stored_tokens_path}. Log in with `hub-auth login`.")
    else:
        rows = [
            (
                "*" if entry.active else " ",
                terminal_text(entry.name),
                entry.masked_token,
                _expiry_text(entry.expires_at),
            )
            for entry in entries
        ]
        name_width = max(len("name"), *(len(row[1]) for row in rows))
        token_width = max(len("token"), *(len(row[2]) for row in rows))
        expires = "expires" if any(row[3] for row in rows) else ""
        for mark, name, masked, expiry in [(" ", "name", "token", expires), *rows]:
            line = f"{mark} {name:<{name_width}}  {masked:<{token_width}}  {expiry}"
            click.echo(line.rstrip())


def _expiry_text(expires_at: datetime | None) -> str:
    """``YYYY-MM-DD`` (local date), with ``(expired)`` once past, as ``hf auth list``."""
    if expires_at is None:
        return ""
    date = f"{expires_at.astimezone():%Y-%m-%d}"
    return f"{date} (expired)" if expires_at.timestamp() < time.time() else date


@main.command()
@click.option("--token-name", metavar="NAME", help="The stored token to activate.")
@click.option(
    "--add-to-git-credentials",
    "--add-to-git-credential",
    "add_to_git",
    is_flag=True,
    help="Also store the token with git's credential helper.",
)
@_format_option
@_endpoint_option
@click.pass_context
def switch(
    ctx: click.Context, token_name: str | None, add_to_git: bool, endpoint: str | None
) -> None:
    """Make a stored token the active one (asks which on a terminal)."""
    from hub_auth._login.files import switch_login
    from hub_auth._login.store import TokenStore
    from hub_auth._tokens import mask_token

    settings = _settings(ctx, endpoint)
    store = TokenStore(settings.token_path)
    if token_name is None:
        token_name = _choose_token(store)
    switched = _unwrap(
        switch_login(store, token_name, os.environ), "See `hub-auth list` for the stored names"
    )
    masked = mask_token(switched.token)
    _outcome(
        f"switched to {token_name!r} ({masked}): it is now the active token",
        {"token_name": token_name, "token": masked},
    )
    for note in switched.notes:
        _note(note)
    if add_to_git:
        from hub_auth._login import git as _git

        _report_git(_git.approve_sync(settings.endpoint, switched.token))


def _choose_token(store: TokenStore) -> str:
    from hub_auth._login.prompt import choose_login, stdin_is_terminal

    if not stdin_is_terminal():
        _fail("no token name given: pass --token-name NAME (`hub-auth list` shows the names)")
    entries = _unwrap(store.list_tokens())
    if not entries:
        _fail(f"no tokens are stored in {store.stored_tokens_path}: log in with `hub-auth login`")
    return choose_login(entries)


@main.command()
@click.option("--token-name", metavar="NAME", help="Remove only this stored token.")
@_format_option
@_endpoint_option
@click.pass_context
def logout(ctx: click.Context, token_name: str | None, endpoint: str | None) -> None:
    """Remove the stored login: everything, or one named token."""
    from hub_auth._login.files import clears_git_credentials, forget_git_credentials, remove_login
    from hub_auth._login.store import TokenStore

    settings = _settings(ctx, endpoint)
    outcome = _unwrap(
        remove_login(TokenStore(settings.token_path), token_name, os.environ),
        "See `hub-auth list` for the stored names" if token_name else None,
    )
    data = {"removed": list(outcome.removed), "removed_active": outcome.removed_active}
    if token_name is not None:
        was_active = " (it was the active token: none is active now)"
        _outcome(
            f"logged out of {token_name!r}{was_active if outcome.removed_active else ''}", data
        )
    elif outcome.removed or outcome.removed_active:
        removed = []
        if outcome.removed:
            removed.append(", ".join(repr(name) for name in outcome.removed))
        if outcome.removed_active:
            removed.append("the active token file")
        _outcome(f"logged out: removed {' and '.join(removed)}", data)
    elif _format() == "human":
        _echo("Not logged in: there was nothing to remove.")
    else:
        _outcome("", data)
    if clears_git_credentials(token_name, outcome):  # git: only then
        outcome = forget_git_credentials(token_name, outcome, settings.endpoint)
    for note in outcome.notes:
        _note(note)


# -- demo ------------------------------------------------------------------------------------


@main.command()
def demo() -> None:
    """Run every operation against a local Hub emulator (touches none of your files)."""
    import asyncio

    from hub_auth.cli._demo import run_demo

    if not asyncio.run(run_demo(click.echo, marks=_marks())):
        _fail("the demo did not go as expected (see the step marked above)")
