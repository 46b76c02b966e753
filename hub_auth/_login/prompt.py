"""Talking to a person at a terminal: the choice between browser and token login, the hidden
token prompt, the device code to enter, the menu of stored tokens, and text made safe to show
there.

``HubAuth.login`` (no token given, on a terminal) and the ``hub-auth`` command ask through
here; nothing else in hub_auth reads a terminal. Importing this module is cheap: no click,
no aiohttp, no pydantic (the menu imports click when it is shown).

``terminal_text`` is the one rule for text that comes from elsewhere (the Hub's answers and
error messages, names in ``stored_tokens``): control characters are shown escaped
(``\\x1b``), so no escape sequence (a window title, OSC 52 clipboard writes, cursor moves)
reaches the terminal, and anything shaped like a token is masked.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import clean_token, scrub

if TYPE_CHECKING:
    from hub_auth._login.outcomes import StoredToken
    from hub_auth._models import DeviceCode

__all__ = [
    "METHOD_PROMPT",
    "TOKEN_PROMPT",
    "ask_for_token",
    "ask_git_credential",
    "ask_login_method",
    "choose_login",
    "menu_choice",
    "show_device_code",
    "show_device_pending",
    "stdin_is_terminal",
    "terminal_text",
]

TOKEN_PROMPT = "Enter your Hugging Face token (input is hidden): "
GIT_PROMPT = "Add token as git credential? [y/N]: "
METHOD_MENU = (
    "How do you want to log in?\n"
    "  1. Log in with your browser (default)\n"
    "  2. Paste an access token\n"
)
METHOD_PROMPT = "Choice [1]: "

T = TypeVar("T")
LoginMethod = Literal["browser", "token"]

# C0 controls (tab and line feed included: one field is one line), DEL, C1 controls (U+009B
# is a one-byte CSI on some terminals), and the bidirectional overrides and isolates that
# make a terminal show text in another order than it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_text(text: str) -> str:
    """``text`` safe to print: control characters escaped (``\\x1b``), tokens masked."""
    return _UNSAFE.sub(_escape, scrub(text))


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


# -- the hidden token prompt -------------------------------------------------------------------


async def ask_for_token() -> Result[str]:
    """Ask for a token (hidden input).

    Returns ``Ok(token)``, or ``Err(no_token)`` when nothing was entered. Whether to add it to
    git is asked separately (``ask_git_credential``), once the Hub has accepted it.
    """
    return await _ask_in_thread(_ask_token_on_terminal)


async def ask_git_credential() -> bool:
    """Ask whether to add the (accepted) token to git credentials; the default is no.

    End of input counts as no; Ctrl-C cancels the login (``KeyboardInterrupt``).
    """
    return await _ask_in_thread(_ask_git_on_terminal)


async def ask_login_method() -> Result[LoginMethod]:
    """Ask how to log in: ``"browser"`` (the default, an empty answer) or ``"token"``.

    A wrong answer is asked again; end of input or Ctrl-C gives ``Err(no_token)``.
    """
    return await _ask_in_thread(_ask_method_on_terminal)


async def _ask_in_thread(ask_on_terminal: Callable[[], T]) -> T:
    """Run a blocking terminal question in a daemon thread and await its answer.

    The event loop keeps running and Ctrl-C is not trapped: a thread blocked in getpass or
    input() cannot be interrupted, and a non-daemon one would keep the process alive after
    Ctrl-C. When the wait is cancelled (Ctrl-C under ``asyncio.run``), the terminal settings
    saved here are restored, since an abandoned getpass will never switch echo back on.
    """
    import asyncio
    import threading

    saved = _terminal_settings()
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def deliver(result: T) -> None:
        if not answer.done():
            answer.set_result(result)

    def ask() -> None:
        result = ask_on_terminal()
        with contextlib.suppress(RuntimeError):  # the loop may be gone after Ctrl-C
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=ask, name="hub_auth-login-prompt", daemon=True).start()
    try:
        return await answer
    except BaseException:
        _restore_terminal(saved)
        raise


def _terminal_settings() -> list[Any] | None:
    try:
        import termios

        return termios.tcgetattr(sys.stdin.fileno())
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def _restore_terminal(saved: list[Any] | None) -> None:
    if saved is None:
        return
    import termios

    with contextlib.suppress(OSError, ValueError):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


def _ask_token_on_terminal() -> Result[str]:
    """Prompt on the terminal for the token, with hidden input."""
    import getpass

    try:
        raw = getpass.getpass(TOKEN_PROMPT)
    except (EOFError, KeyboardInterrupt):
        return Err(HubAuthError(ErrorKind.NO_TOKEN, "login cancelled: no token entered"))
    token = clean_token(raw)
    if token is None:
        return Err(HubAuthError(ErrorKind.NO_TOKEN, "no token entered"))
    return Ok(token)


def _ask_git_on_terminal() -> bool:
    try:
        answer = input(GIT_PROMPT)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _ask_method_on_terminal() -> Result[LoginMethod]:
    try:
        sys.stdout.write(METHOD_MENU)
        while True:
            answer = input(METHOD_PROMPT).strip()
            if answer in ("", "1"):
                return Ok("browser")
            if answer == "2":
                return Ok("token")
            sys.stdout.write("Enter 1 or 2.\n")
    except (EOFError, KeyboardInterrupt):
        return Err(HubAuthError(ErrorKind.NO_TOKEN, "login cancelled: no login method chosen"))


# -- the device code to enter (login through the browser) ------------------------------------


def show_device_code(device: DeviceCode) -> None:
    """Print where to go and which code to enter, as ``hf auth login`` does (the browser is
    never opened for the person: they may be on another machine)."""
    # Both come from the Hub; neither may show the device code (it would let anyone who
    # sees the screen finish the login).
    device_code = device.device_code.get_secret_value()
    url = terminal_text(scrub(device.verification_uri_complete, device_code))
    code = terminal_text(scrub(device.user_code, device_code))
    sys.stdout.write(
        f"\nOpen this URL in your browser:\n    {url}\n\nAnd enter the code: {code}\n\n"
    )
    sys.stdout.flush()


@contextlib.contextmanager
def show_device_pending() -> Iterator[Callable[[], None]]:
    """Print "Waiting for authorization" and yield a callback that adds a dot; the line is
    ended on the way out, whatever happens (approval, error, Ctrl-C)."""

    def dot() -> None:
        sys.stdout.write(".")
        sys.stdout.flush()

    sys.stdout.write("Waiting for authorization")
    sys.stdout.flush()
    try:
        yield dot
    finally:
        sys.stdout.write("\n")
        sys.stdout.flush()


# -- the menu of stored tokens (the CLI's `switch` without a name) ------------------------------


def choose_login(entries: Sequence[StoredToken]) -> str:
    """Show the stored tokens, numbered, and return the name of the one the user picks.

    Needs click (the ``cli`` extra); a wrong answer is asked again, Ctrl-C raises click's
    ``Abort``.
    """
    import click

    for number, entry in enumerate(entries, start=1):
        mark = "*" if entry.active else " "
        name = terminal_text(entry.name)
        click.echo(f"{number:>3}. {mark} {name}  {entry.masked_token}")
    count = len(entries)
    choice: int = click.prompt(
        "Number of the token to activate", value_proc=lambda text: menu_choice(text, count)
    )
    return entries[choice - 1].name


def menu_choice(text: str, count: int) -> int:
    """Parse an answer to the menu; the error never repeats it (a token typed by mistake)."""
    import click

    answer = text.strip()
    if answer.isascii() and answer.isdigit() and 1 <= int(answer) <= count:
        return int(answer)
    raise click.UsageError(f"enter a number from 1 to {count}")
