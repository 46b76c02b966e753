"""The local login operations: list, switch and log out, shared by ``HubAuth`` and the CLI.

Network-free and synchronous (``HubAuth`` runs the ones that write in a worker thread, the
CLI calls them directly); the one exception is ``forget_git_credentials``, which runs git in
a subprocess. Importing this module loads neither aiohttp nor pydantic: ``hub-auth list``,
``switch`` and ``logout`` must start fast.

Each operation returns what both callers need, and the rules live only here:

- ``list_logins``: ``TokenStore.list_tokens`` (masked, sorted, the active one marked) and the
  notes a person should see (an environment token overrides the file; the active token has
  no entry).
- ``switch_login``: the token made active and a note when an environment token overrides it.
- ``remove_login``: what was removed (with the tokens to drop from caches) and a note when an
  environment token still authenticates; ``clears_git_credentials`` says whether the Hub's git
  credential goes too (done by ``forget_git_credentials``).

The results are the public types of ``_login.outcomes`` (``StoredToken``, ``SwitchInfo``,
``LogoutInfo``), made once here or in ``TokenStore`` and handed on as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from hub_auth._login.outcomes import LogoutInfo, StoredToken, SwitchInfo
from hub_auth._login.store import TokenStore
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import env_override_note, env_still_set_note
from hub_auth._tokens import mask_token

__all__ = [
    "Logins",
    "clears_git_credentials",
    "forget_git_credentials",
    "list_logins",
    "remove_login",
    "switch_login",
    "with_git_outcome",
]


@dataclass(frozen=True, slots=True)
class Logins:
    """What ``list_logins`` found: the stored tokens and the notes a person should see."""

    tokens: tuple[StoredToken, ...]
    notes: tuple[str, ...] = ()


def list_logins(store: TokenStore, environ: Mapping[str, str]) -> Result[Logins]:
    """``TokenStore.list_tokens`` with the notes for a person: an environment token overrides
    the file, the active token has no entry.

    ``environ`` is where environment tokens are looked up (``{}`` to ignore them).
    """
    listed = store.list_tokens()
    if isinstance(listed, Err):
        return listed
    active = store.read_active().unwrap_or(None)  # list_tokens has just read it
    notes = []
    if note := env_override_note(environ, active):
        notes.append(note)
    if active is not None and not any(token.active for token in listed.value):
        notes.append(f"the active token ({mask_token(active)}) is not among the stored tokens")
    return Ok(Logins(tokens=tuple(listed.value), notes=tuple(notes)))


def switch_login(store: TokenStore, name: str, environ: Mapping[str, str]) -> Result[SwitchInfo]:
    """Make the token stored under ``name`` the active one (``Err(not_found)`` if unknown).

    ``environ`` is where environment tokens are looked up (``{}`` to ignore them).
    """
    if not isinstance(name, str):
        raise TypeError(f"token_name must be a str, not {type(name).__name__}")
    activated = store.activate(name)
    if isinstance(activated, Err):
        return activated
    note = env_override_note(environ, activated.value)
    return Ok(SwitchInfo(token_name=name, notes=(note,) if note else (), token=activated.value))


def remove_login(
    store: TokenStore, name: str | None, environ: Mapping[str, str]
) -> Result[LogoutInfo]:
    """Log out locally: both files, or only the entry ``name`` (``Err(not_found)`` if unknown).

    Removing the active token's entry removes the token file too, as huggingface_hub does.
    ``environ`` is where environment tokens are looked up (``{}`` to ignore them). Git
    credentials are the caller's next step: see ``clears_git_credentials``.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"token_name must be a str, not {type(name).__name__}")
    removed = store.remove(name)
    if isinstance(removed, Err) or (note := env_still_set_note(environ)) is None:
        return removed
    return Ok(dataclasses.replace(removed.value, notes=(*removed.value.notes, note)))


def clears_git_credentials(name: str | None, logged_out: LogoutInfo) -> bool:
    """Whether a logout (of everything, or of the entry ``name``) clears the Hub's git
    credential: it is the active token's (huggingface_hub clears it on every logout that
    removes the active token)."""
    return name is None or logged_out.removed_active


def forget_git_credentials(name: str | None, logged_out: LogoutInfo, endpoint: str) -> LogoutInfo:
    """Clear the Hub's git credential when the logout calls for it; a failure becomes a note.

    Blocking (git runs in a subprocess), for the CLI. ``HubAuth.logout`` awaits
    ``_login.git.reject`` instead, so that a cancelled logout kills git, and notes its outcome
    with ``with_git_outcome``.
    """
    if not clears_git_credentials(name, logged_out):
        return logged_out
    # A subprocess: only when there is something to clear.
    from hub_auth._login import git as _git

    return with_git_outcome(logged_out, _git.reject_sync(endpoint))


def with_git_outcome(logged_out: LogoutInfo, rejected: Result[object]) -> LogoutInfo:
    """``logged_out``, with a note first when git could not clear the credential."""
    if isinstance(rejected, Err):
        note = f"git credentials were not cleared: {rejected.error}"
        return dataclasses.replace(logged_out, notes=(note, *logged_out.notes))
    return logged_out
