"""What the local login operations return: ``StoredToken``, ``SwitchInfo``, ``LogoutInfo``.

One type per outcome, from the file layer (``TokenStore``, ``_login.files``) through
``HubAuth`` to the ``hub-auth`` command, re-exported by ``hub_auth`` under these names. They
are frozen, slotted dataclasses rather than pydantic models so that ``hub-auth list``,
``switch`` and ``logout`` never import pydantic (start-up time). Like the models, they are
immutable all the way down: sequences are tuples (a list given is made a tuple).

``model_dump()`` and ``model_dump_json()`` give what the pydantic models of earlier versions
gave (``hub-auth list --json`` prints ``model_dump(mode="json")``). Fields that hold a token
(``SwitchInfo.token``, ``LogoutInfo.removed_tokens``, for hub_auth's caches and git) are left
out of ``repr``, equality and both dumps, and their values mask themselves in any ``repr``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["LogoutInfo", "StoredToken", "SwitchInfo"]


class _Outcome:
    """``model_dump``/``model_dump_json`` for the dataclasses below (the pydantic spelling)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        # Frozen all the way down: a list given for a tuple field becomes a tuple.
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if isinstance(value, list):
                object.__setattr__(self, item.name, tuple(value))

    def model_dump(self, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """The public fields as a dict; ``mode="json"`` makes every value JSON-ready
        (tuples as lists, datetimes as ISO 8601 with ``Z`` for UTC)."""
        dumped: dict[str, Any] = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if not item.repr:
                continue  # a token
            value = getattr(self, item.name)
            if mode == "json":
                value = _json_value(value)
            dumped[item.name] = value
        return dumped

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """``model_dump(mode="json")`` as a JSON string."""
        import json  # only here: `hub-auth token` loads this module and never needs json

        separators = (",", ":") if indent is None else None
        return json.dumps(self.model_dump(mode="json"), indent=indent, separators=separators)


def _json_value(value: object) -> object:
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, datetime):
        text = value.isoformat()
        if value.utcoffset() is not None and value.utcoffset() == UTC.utcoffset(None):
            text = text.removesuffix("+00:00") + "Z"
        return text
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredToken(_Outcome):
    """One entry of ``stored_tokens``, as ``list_tokens`` shows it (the token masked)."""

    name: str
    masked_token: str
    active: bool = False
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchInfo(_Outcome):
    """What ``switch_token`` made active."""

    token_name: str
    notes: tuple[str, ...] = ()
    token: str = field(default="", repr=False, compare=False)
    """The token now active (masked in any ``repr``); not part of ``model_dump``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoutInfo(_Outcome):
    """What ``logout`` removed, and what still authenticates afterwards."""

    removed: tuple[str, ...] = ()
    """Names of the ``stored_tokens`` entries removed."""
    removed_active: bool = False
    """Whether the active token file was removed."""
    notes: tuple[str, ...] = ()
    removed_tokens: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """The tokens removed (masked in any ``repr``), for dropping them from caches; not part
    of ``model_dump``."""
