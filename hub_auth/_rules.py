"""Who may call a service: the checks ``HubBearer`` and the MCP verifiers share.

Two questions, answered the same way for every adapter (FastAPI, the MCP SDK, FastMCP):

- ``AccessRules.check(user)``: does a caller the Hub accepted meet the service's
  organisation, role and permission rules? ``None`` or the ``Refusal`` (always a 403).
- ``judge(error, auth)``: what a failed whoami means for the caller: ``REJECTED`` (a bad
  token: 401), ``FORBIDDEN`` (the Hub refuses it by policy: 403) or ``UNAVAILABLE`` (it could
  not be checked: 503 with the seconds to wait; a throttled warning is logged).

Framework-free on purpose: ``hub_auth.mcp`` must not need FastAPI.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypedDict

from hub_auth._errors import ErrorKind, HubAuthError

if TYPE_CHECKING:
    from hub_auth._client import HubAuth
    from hub_auth._models import UserInfo

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "NO_TOKEN_DETAIL",
    "ROLE_ORDER",
    "AccessRuleOptions",
    "AccessRules",
    "Refusal",
    "Verdict",
    "check_retry_after",
    "judge",
    "retry_after_seconds",
    "warn_if_uncached",
]

logger = logging.getLogger("hub_auth")

ROLE_ORDER = ("read", "write", "admin")
"""Classic token roles from weakest to strongest, for ``require_role``."""

DEFAULT_RETRY_AFTER = 5.0
"""Seconds a 503 tells clients to wait when the Hub did not say (``retry_after_default``)."""

NO_TOKEN_DETAIL = (
    "no Hugging Face token: send yours as 'Authorization: Bearer hf_...' "
    "(from huggingface.co/settings/tokens)"
)
"""The 401 for a request without a token: what to send (a detail or a close reason ≤ 123 bytes)."""

_WARNING_INTERVAL = 60.0
"""Seconds between two "could not check" warnings of one kind (for one HubAuth)."""

_REJECTED_KINDS = (ErrorKind.UNAUTHORIZED, ErrorKind.INVALID_TOKEN)


class AccessRuleOptions(TypedDict, total=False):
    """The rule arguments the adapters take as they are (``**rules``), checked by
    ``AccessRules.build``."""

    require_orgs: Sequence[str]
    require_all_orgs: bool
    require_role: str | None
    require_permissions: Sequence[str]
    permission_entity: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a caller the Hub accepted is refused (HTTP 403).

    ``insufficient_scope``: the token lacks a role or permission (RFC 6750's
    ``insufficient_scope``); false for a missing organisation membership.
    """

    detail: str
    insufficient_scope: bool


@dataclass(frozen=True)
class AccessRules:
    """Organisation, role and permission rules (see ``HubBearer`` for their meaning)."""

    require_orgs: tuple[str, ...] = ()
    require_all_orgs: bool = False
    require_role: str | None = None
    require_permissions: tuple[str, ...] = ()
    permission_entity: str | None = None
    active: bool = field(init=False, repr=False)

    @classmethod
    def build(
        cls,
        require_orgs: Sequence[str] = (),
        require_all_orgs: bool = False,
        require_role: str | None = None,
        require_permissions: Sequence[str] = (),
        permission_entity: str | None = None,
    ) -> AccessRules:
        """Check the arguments (``TypeError``/``ValueError`` on misuse) and build the rules."""
        if isinstance(require_orgs, str) or isinstance(require_permissions, str):
            raise TypeError("require_orgs and require_permissions take a list of names")
        if require_role is not None and require_role not in ROLE_ORDER:
            raise ValueError(f"require_role must be one of {ROLE_ORDER}, got {require_role!r}")
        if permission_entity is not None and (
            not isinstance(permission_entity, str) or not permission_entity
        ):
            raise TypeError("permission_entity takes one user or organisation name")
        if permission_entity is not None and not require_permissions:
            raise ValueError("permission_entity needs require_permissions")
        return cls(
            tuple(require_orgs),
            require_all_orgs,
            require_role,
            tuple(require_permissions),
            permission_entity,
        )

    def __post_init__(self) -> None:
        active = bool(self.require_orgs or self.require_role or self.require_permissions)
        object.__setattr__(self, "active", active)

    def check(self, user: UserInfo) -> Refusal | None:
        """``None`` when ``user`` meets every rule, else the ``Refusal``."""
        if not self.active:
            return None
        member = set(user.organizations)
        if self.require_orgs:
            wanted = self.require_orgs
            allowed = (
                all(org in member for org in wanted)
                if self.require_all_orgs
                else any(org in member for org in wanted)
            )
            if not allowed:
                which = "all of" if self.require_all_orgs and len(wanted) > 1 else "one of"
                return Refusal(
                    f"this resource requires membership of {which}: {', '.join(wanted)}", False
                )
        token = user.token
        if self.require_role is not None:
            role = token.role if token is not None else None
            needed = ROLE_ORDER.index(self.require_role)
            if role not in ROLE_ORDER or ROLE_ORDER.index(role) < needed:
                return Refusal(
                    f"this resource requires a token with the {self.require_role!r} "
                    f"role or higher (this token's role: {role or 'none'})",
                    True,
                )
        if self.require_permissions:
            return self._check_permissions(user, member)
        return None

    def _check_permissions(self, user: UserInfo, member: set[str]) -> Refusal | None:
        """The refusal unless the token holds the permissions on the route's entity."""
        token = user.token
        if self.permission_entity is not None:
            entities: tuple[str, ...] = (self.permission_entity,)
            need_all = True
        elif self.require_orgs:
            # Any-of: one organisation that admits the caller must also grant everything.
            entities = tuple(org for org in self.require_orgs if org in member)
            need_all = self.require_all_orgs
        else:
            entities = (user.username,)
            need_all = True

        def missing_on(entity: str) -> list[str]:
            return [
                permission
                for permission in self.require_permissions
                if token is None or not token.has_permission(permission, entity=entity)
            ]

        gaps = {entity: missing_on(entity) for entity in entities}
        granted = [entity for entity, missing in gaps.items() if not missing]
        if granted and (not need_all or len(granted) == len(entities)):
            return None
        described = "; ".join(
            f"on {entity}: {', '.join(missing)}" for entity, missing in gaps.items() if missing
        )
        return Refusal(f"this token lacks the permissions {described}", True)


class Verdict(Enum):
    """What a failed whoami means for the caller."""

    REJECTED = "rejected"
    """The token is invalid, expired or revoked: 401, a new sign-in helps."""
    FORBIDDEN = "forbidden"
    """The Hub knows the token and refuses it by policy: 403, a new sign-in would not help."""
    UNAVAILABLE = "unavailable"
    """The token could not be checked (the Hub's fault or ours): 503 with ``Retry-After``."""


def check_retry_after(seconds: float) -> float:
    """``seconds`` as a float, or ``ValueError`` unless it is a positive finite number."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds < math.inf
    ):
        raise ValueError(
            f"retry_after_default must be a positive number of seconds, got {seconds!r}"
        )
    return float(seconds)


def judge(error: HubAuthError, auth: HubAuth) -> tuple[Verdict, int]:
    """The verdict on a whoami failure, and for ``UNAVAILABLE`` the whole seconds to wait.

    The wait is the Hub's when it said (``retry_after``), else 0 (the caller's default
    applies). An ``UNAVAILABLE`` verdict logs a warning, at most one per kind and minute.
    """
    if error.kind in _REJECTED_KINDS:
        return Verdict.REJECTED, 0
    if error.kind is ErrorKind.FORBIDDEN:
        return Verdict.FORBIDDEN, 0
    _throttle_for(auth).warn(error)
    wait = error.retry_after
    return Verdict.UNAVAILABLE, 0 if wait is None else max(1, math.ceil(wait))


def retry_after_seconds(hub_wait: int, default: float) -> str:
    """The ``Retry-After`` value: the Hub's wait when it said one, else ``default``."""
    return str(hub_wait if hub_wait else max(1, math.ceil(default)))


class _WarningThrottle:
    """At most one warning per kind and interval; the next one counts those left out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a HubAuth may serve several threads' loops
        self._last: dict[ErrorKind, float] = {}
        self._suppressed: dict[ErrorKind, int] = {}

    def warn(self, error: HubAuthError) -> None:
        now = time.monotonic()
        kind = error.kind
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < _WARNING_INTERVAL:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            logger.warning(
                "could not check a caller's token with the Hub: %s (and %d more %s failures "
                "since the last such warning, not logged)",
                error,
                suppressed,
                kind.value,
            )
        else:
            logger.warning("could not check a caller's token with the Hub: %s", error)


# HubAuth instances already warned about having no cache (once each, not once per request).
_warned_uncached: weakref.WeakSet[HubAuth] = weakref.WeakSet()


def warn_if_uncached(auth: HubAuth, who: str) -> None:
    """Warn once per ``auth`` when it has no whoami cache (``who`` names the adapter)."""
    if auth.cache is None and auth not in _warned_uncached:
        _warned_uncached.add(auth)
        logger.warning(
            "%s uses a HubAuth without a cache: every request asks the Hub, whose whoami is "
            "rate-limited per IP; pass HubAuth(cache=MemoryCache())",
            who,
        )


# One throttle per HubAuth: it stands for one Hub endpoint and one rate-limit budget.
_throttles: weakref.WeakKeyDictionary[HubAuth, _WarningThrottle] = weakref.WeakKeyDictionary()
_throttles_lock = threading.Lock()


def _throttle_for(auth: HubAuth) -> _WarningThrottle:
    with _throttles_lock:
        throttle = _throttles.get(auth)
        if throttle is None:
            throttle = _throttles[auth] = _WarningThrottle()
        return throttle
