"""Talking to a person at a terminal: the hidden token prompt, the menu of stored tokens, and
text made safe to show there.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import clean_token, scrub

if TYPE_CHECKING:
    from hub_auth._login_files import LoginEntry

__all__ = [
    "TOKEN_PROMPT",
    "ask_for_token",
    "choose_login",
    "menu_choice",
    "stdin_is_terminal",
    "terminal_text",
]

TOKEN_PROMPT = "Enter your Hugging Face token (input is hidden): "
GIT_PROMPT = "Add token as git credential? [y/N]: "

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


async def ask_for_token(*, ask_git: bool) -> Result[tuple[str, bool]]:
    """Ask for a token (hidden input) and, if ``ask_git``, whether to add it to git.

    Returns ``Ok((token, wants_git))``, or ``Err(no_token)`` when nothing was entered.

    Asks in a daemon thread, so the event loop keeps running and Ctrl-C is not trapped: a
    thread blocked in getpass cannot be interrupted, and a non-daemon one would keep the
    process alive after Ctrl-C. When the wait is cancelled (Ctrl-C under ``asyncio.run``),
    the terminal settings saved here are restored, since the abandoned getpass will never
    switch echo back on.
    """
    import asyncio
    import threading

    saved = _terminal_settings()
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Result[tuple[str, bool]]] = loop.create_future()

    def deliver(result: Result[tuple[str, bool]]) -> None:
        if not answer.done():
            answer.set_result(result)

    def ask() -> None:
        result = _ask_on_terminal(ask_git=ask_git)
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


def _ask_on_terminal(*, ask_git: bool) -> Result[tuple[str, bool]]:
    """Prompt on the terminal: the token with hidden input, then git credentials (default no)."""
    import getpass

    try:
        raw = getpass.getpass(TOKEN_PROMPT)
        answer = input(GIT_PROMPT) if ask_git else "n"
    except (EOFError, KeyboardInterrupt):
        return Err(HubAuthError(ErrorKind.NO_TOKEN, "login cancelled: no token entered"))
    token = clean_token(raw)
    if token is None:
        return Err(HubAuthError(ErrorKind.NO_TOKEN, "no token entered"))
    return Ok((token, answer.strip().lower() in ("y", "yes")))


# -- the menu of stored tokens (the CLI's `switch` without a name) ------------------------------


def choose_login(entries: Sequence[LoginEntry]) -> str:
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
