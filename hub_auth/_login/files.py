"""The local login operations: list, switch and log out, shared by ``HubAuth`` and the CLI.

Network-free and synchronous (``HubAuth`` runs the ones that write in a worker thread, the
CLI calls them directly); the one exception is ``forget_git_credentials``, which runs git in
a subprocess. Importing this module loads neither aiohttp nor pydantic: ``hub-auth list``,
``switch`` and ``logout`` must start fast.

Each operation returns what both callers need, and the rules live only here:

- ``list_logins``: the ``stored_tokens`` entries (masked, sorted, the active one marked) and
  the notes a person should see (an environment token overrides the file; the active token
  has no entry).
- ``switch_login``: the token made active, the one it replaced (for caches) and a note when
  an environment token overrides it.
- ``remove_login``: what was removed, the tokens to drop from caches, whether git
  credentials are to be cleared (``LoggedOut.clears_git_credentials``, done by
  ``forget_git_credentials``) and a note when an environment token still authenticates.

``LoginEntry`` is the one description of a stored token. ``HubAuth.list_tokens`` hands it out
as the public pydantic model ``StoredToken`` (same fields, built with ``from_attributes``);
the CLI uses it as it is, without pydantic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from hub_auth._login.store import TokenStore, entry_expires_at, entry_token
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import env_override_note, env_still_set_note
from hub_auth._tokens import mask_token

if TYPE_CHECKING:
    from hub_auth._models import StoredToken

__all__ = [
    "LoggedOut",
    "LoginEntry",
    "Logins",
    "Switched",
    "forget_git_credentials",
    "list_logins",
    "remove_login",
    "stored_tokens",
    "switch_login",
]


@dataclass(frozen=True, slots=True)
class LoginEntry:
    """One entry of ``stored_tokens``, the token masked (``StoredToken``'s fields)."""

    name: str
    masked_token: str
    active: bool = False
    expires_at: datetime | None = None

    def as_json(self) -> dict[str, object]:
        """The same as ``StoredToken.model_dump(mode="json")``."""
        expires = self.expires_at
        return {
            **dataclasses.asdict(self),
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else None,
        }


@dataclass(frozen=True, slots=True)
class Logins:
    """What ``list_logins`` found."""

    entries: tuple[LoginEntry, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Switched:
    """What ``switch_login`` made active."""

    name: str
    token: str = field(repr=False)
    """The token now active (``MaskedStr``)."""
    previous: str | None = field(repr=False)
    """The token that was active before, for dropping it from caches."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """What ``remove_login`` removed, and what is left to do or to know."""

    everything: bool
    """No name was given: both files were removed."""
    removed_names: tuple[str, ...]
    removed_active: bool
    removed_tokens: tuple[str, ...] = field(repr=False)
    """The removed tokens, for dropping them from caches."""
    notes: tuple[str, ...] = ()

    @property
    def clears_git_credentials(self) -> bool:
        """Whether the Hub's git credential goes too: it is the active token's (huggingface_hub
        clears it on every logout that removes the active token)."""
        return self.everything or self.removed_active


def list_logins(store: TokenStore, environ: Mapping[str, str]) -> Result[Logins]:
    """The stored tokens, masked, sorted by name, the active one marked.

    ``environ`` is where environment tokens are looked up (``{}`` to ignore them).
    """
    entries = store.read_entries()
    if isinstance(entries, Err):
        return entries
    active = store.read_active()
    if isinstance(active, Err):
        return active
    listed = []
    for name, fields in sorted(entries.value.items()):
        token = entry_token(fields)
        listed.append(
            LoginEntry(
                name=name,
                masked_token=mask_token(token) if token else "<not set>",
                active=token is not None and token == active.value,
                expires_at=entry_expires_at(fields),
            )
        )
    notes = []
    if note := env_override_note(environ, active.value):
        notes.append(note)
    if active.value is not None and not any(entry.active for entry in listed):
        notes.append(
            f"the active token ({mask_token(active.value)}) is not among the stored tokens"
        )
    return Ok(Logins(entries=tuple(listed), notes=tuple(notes)))


def stored_tokens(logins: Logins) -> list[StoredToken]:
    """The entries as the public model ``StoredToken`` (imports pydantic)."""
    from hub_auth._models import StoredToken

    return [StoredToken.model_validate(entry, from_attributes=True) for entry in logins.entries]


def switch_login(store: TokenStore, name: str, environ: Mapping[str, str]) -> Result[Switched]:
    """Make the token stored under ``name`` the active one (``Err(not_found)`` if unknown).

    ``environ`` is where environment tokens are looked up (``{}`` to ignore them).
    """
    if not isinstance(name, str):
        raise TypeError(f"token_name must be a str, not {type(name).__name__}")
    previous = store.read_active().unwrap_or(None)
    activated = store.activate(name)
    if isinstance(activated, Err):
        return activated
    note = env_override_note(environ, activated.value)
    return Ok(
        Switched(
            name=name,
            token=activated.value,
            previous=previous,
            notes=(note,) if note else (),
        )
    )


def remove_login(
    store: TokenStore, name: str | None, environ: Mapping[str, str]
) -> Result[LoggedOut]:
    """Log out locally: both files, or only the entry ``name`` (``Err(not_found)`` if unknown).

    Removing the active token's entry removes the token file too, as huggingface_hub does.
    ``environ`` is where environment tokens are looked up (``{}`` to ignore them). Git
    credentials are the caller's next step: see ``LoggedOut.clears_git_credentials``.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"token_name must be a str, not {type(name).__name__}")
    removed = store.remove(name)
    if isinstance(removed, Err):
        return removed
    outcome = removed.value
    note = env_still_set_note(environ)
    return Ok(
        LoggedOut(
            everything=name is None,
            removed_names=tuple(outcome.removed_names),
            removed_active=outcome.removed_active,
            removed_tokens=tuple(outcome.removed_token_values),
            notes=(note,) if note else (),
        )
    )


async def forget_git_credentials(logged_out: LoggedOut, endpoint: str) -> LoggedOut:
    """Clear the Hub's git credential when the logout calls for it; a failure becomes a note."""
    if not logged_out.clears_git_credentials:
        return logged_out
    from hub_auth._login import (
        git as _git,
    )  # anyio and a subprocess: only when there is something to clear

    rejected = await _git.reject(endpoint)
    if isinstance(rejected, Err):
        note = f"git credentials were not cleared: {rejected.error}"
        return dataclasses.replace(logged_out, notes=(note, *logged_out.notes))
    return logged_out
