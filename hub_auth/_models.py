"""Pydantic models of what the Hub sends and what hub_auth returns.

(The results of the local operations, ``StoredToken``, ``SwitchInfo`` and ``LogoutInfo``, are
plain dataclasses in ``_login.outcomes``: the CLI's local commands must not import pydantic.)

Wire payloads use camelCase; the models use snake_case attributes with camelCase aliases.
Unknown fields are ignored (the Hub adds fields over time), missing optional ones are ``None``.

Every model is frozen and every sequence in one is a tuple: a cache hands the same ``UserInfo``
to many callers, so no caller may be able to change what the others see.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Annotated

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
)

__all__ = [
    "DeviceCode",
    "FineGrainedScope",
    "LoginInfo",
    "OrgInfo",
    "TokenInfo",
    "UserInfo",
]


_SHARED_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
# Keyed by the field values (a tuple hashes and compares in C; a pydantic model's __hash__
# and __eq__ are Python code, about 4 µs a whoami between them). Equal values, equal models.
# Weak references, removed with their organisation: a plain dict of ``weakref.ref`` rather
# than a WeakValueDictionary, whose Python-level methods cost more than the lookup itself.
_SHARED_ORGS: dict[tuple[object, ...], weakref.ref[OrgInfo]] = {}
_MAX_SHARED_FIELDS_SETS = 4096


class _HubModel(BaseModel):
    # defer_build: a model's validator is built when it is first used, not at import, so
    # `import hub_auth` pays for none and `hub-auth whoami` only for the ones it uses (also
    # pydantic's plugin lookup, which scans every installed package's entry points).
    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        serialize_by_alias=False,
        defer_build=True,
    )


def _shared_fields_set(fields_set: set[str]) -> set[str]:
    """One set object for every frozen model explicitly given the same fields.

    Frozen models never add to their set of explicitly set fields, so instances with the same
    set can share one: about 1.7 KB less per cached UserInfo (a cache of 10,000 validations is
    mostly these sets). ``model_copy`` copies the set before changing it.
    """
    key = frozenset(fields_set)
    shared = _SHARED_FIELDS_SETS.get(key)
    if shared is None:
        if len(_SHARED_FIELDS_SETS) >= _MAX_SHARED_FIELDS_SETS:
            return fields_set
        shared = _SHARED_FIELDS_SETS.setdefault(key, fields_set)
    return shared


def _share_fields_set(model: BaseModel) -> None:
    object.__setattr__(
        model, "__pydantic_fields_set__", _shared_fields_set(model.__pydantic_fields_set__)
    )


def _shared_org(org: OrgInfo) -> OrgInfo:
    """The OrgInfo equal to ``org`` that some UserInfo already holds, else ``org`` itself."""
    key = tuple(org.__dict__.values())
    ref = _SHARED_ORGS.get(key)
    if ref is not None and (shared := ref()) is not None:
        return shared
    _share_fields_set(org)

    def forget(dead: weakref.ref[OrgInfo], key: tuple[object, ...] = key) -> None:
        if _SHARED_ORGS.get(key) is dead:
            del _SHARED_ORGS[key]

    _SHARED_ORGS[key] = weakref.ref(org, forget)
    return org


class OrgInfo(_HubModel):
    """An organisation the user belongs to (an entry of ``orgs`` in whoami)."""

    name: str
    id: str | None = None
    type: str = "org"
    fullname: str | None = None
    email: str | None = None
    avatar_url: str | None = Field(default=None, alias="avatarUrl")
    can_pay: bool | None = Field(default=None, alias="canPay")
    period_end: int | None = Field(default=None, alias="periodEnd")
    role_in_org: str | None = Field(default=None, alias="roleInOrg")


class FineGrainedScope(_HubModel):
    """Permissions a fine-grained token has on one entity (a user or an org)."""

    entity_id: str | None = Field(default=None, validation_alias=AliasPath("entity", "_id"))
    entity_type: str | None = Field(default=None, validation_alias=AliasPath("entity", "type"))
    entity_name: str | None = Field(default=None, validation_alias=AliasPath("entity", "name"))
    permissions: tuple[str, ...] = ()


def _split_scopes(value: object) -> object:
    # OAuth sends scopes as one space-separated string (RFC 6749 §3.3).
    return tuple(value.split()) if isinstance(value, str) else value


class TokenInfo(_HubModel):
    """What the Hub says about the token used for the call (whoami's ``auth``)."""

    type: str | None = None
    """``access_token``, ``app_token``, ``app_token_as_user``, ... ."""
    display_name: str | None = Field(
        default=None, validation_alias=AliasPath("accessToken", "displayName")
    )
    role: str | None = Field(default=None, validation_alias=AliasPath("accessToken", "role"))
    """``read``, ``write``, ``fineGrained`` or any other string the Hub sends."""
    created_at: datetime | None = Field(
        default=None, validation_alias=AliasPath("accessToken", "createdAt")
    )
    expires_at: datetime | None = Field(default=None, validation_alias="expiresAt")
    resource: str | None = None
    """The resource (RFC 8707) the Hub bound an OAuth token to, when it says so."""
    scopes: Annotated[tuple[str, ...], BeforeValidator(_split_scopes)] = Field(
        default=(), validation_alias=AliasChoices("scope", "scopes")
    )
    """The OAuth scopes of the token, when the Hub says them (``scope``, space-separated)."""
    can_read_gated_repos: bool | None = Field(
        default=None,
        validation_alias=AliasPath("accessToken", "fineGrained", "canReadGatedRepos"),
    )
    # Tuples: the models are frozen, and an empty tuple is shared where a list would not be.
    global_permissions: tuple[str, ...] = Field(
        default=(),
        validation_alias=AliasPath("accessToken", "fineGrained", "global"),
    )
    scoped: tuple[FineGrainedScope, ...] = Field(
        default=(),
        validation_alias=AliasPath("accessToken", "fineGrained", "scoped"),
    )

    def has_permission(self, permission: str, entity: str | None = None) -> bool:
        """Whether a fine-grained token grants ``permission`` (globally or on ``entity``).

        Classic tokens have no fine-grained list: ``write`` grants everything, ``read``
        grants permissions ending in ``.read``.
        """
        if self.role == "write" or self.role == "admin":
            return True
        if self.role == "read":
            return permission.endswith(".read")
        if permission in self.global_permissions:
            return True
        return any(
            permission in scope.permissions and (entity is None or scope.entity_name == entity)
            for scope in self.scoped
        )


class UserInfo(_HubModel):
    """Who a token belongs to: the body of ``GET /api/whoami-v2``.

    ``username``, ``email``, ``fullname`` and ``organizations`` are the fields of the
    Elixir ``HfHub.Auth.user_info`` type; the rest is kept from what the Hub sends. Fields the
    Hub does not send are ``None`` (or empty); fields it adds later are ignored.

    Attributes:
        username: The account name (whoami's ``name``), as in ``huggingface.co/<username>``.
        email: The account's email address; the Hub sends it only to tokens allowed to
            read it (``None`` otherwise).
        fullname: The display name the user chose.
        id: The Hub's internal id of the account.
        type: ``"user"`` for a person's account (``"app"`` and others exist).
        avatar_url: URL of the account's picture.
        email_verified: Whether the email address was confirmed.
        is_pro: Whether the account has a PRO subscription.
        can_pay: Whether the account has a payment method.
        orgs: The organisations the user belongs to, as ``OrgInfo`` objects (name, id,
            the user's ``role_in_org``, avatar, ...), in the Hub's order.
        organizations: (property) Just their names, ``tuple(org.name for org in orgs)``:
            what membership checks need, e.g. ``"my-org" in user.organizations``.
        token: What the Hub says about the token used for the call (``TokenInfo``: type,
            display name, role, fine-grained permissions, expiry); whoami's ``auth``.
    """

    username: str = Field(validation_alias=AliasChoices("name", "username"))
    email: str | None = None
    fullname: str | None = None
    id: str | None = None
    type: str = "user"
    avatar_url: str | None = Field(default=None, alias="avatarUrl")
    email_verified: bool | None = Field(default=None, alias="emailVerified")
    is_pro: bool | None = Field(default=None, alias="isPro")
    can_pay: bool | None = Field(default=None, alias="canPay")
    orgs: tuple[OrgInfo, ...] = ()
    token: TokenInfo | None = Field(default=None, validation_alias=AliasChoices("auth", "token"))

    @property
    def organizations(self) -> tuple[str, ...]:
        """Names of the user's organisations (the seed's ``organizations``)."""
        return tuple(org.name for org in self.orgs)


class LoginInfo(_HubModel):
    """What ``login`` did: who logged in and under which name the token was stored."""

    user: UserInfo
    token_name: str
    kept_existing: bool = False
    """True when ``login()`` found a valid active token and kept it (no ``force``)."""
    notes: tuple[str, ...] = ()
    """Things the user should know: an environment variable that overrides the file, a git
    credential helper that is missing, a token that was already active."""
    expires_at: datetime | None = None
    """When the stored token expires, when the Hub said (OAuth tokens from device login)."""


class DeviceCode(_HubModel):
    """A device login in progress (RFC 8628), from ``HubAuth.start_device_login``.

    Show ``verification_uri_complete`` (or ``verification_uri`` and ``user_code``) to the
    person, then pass this object to ``HubAuth.complete_device_login``. The device code
    itself is a secret: it is a ``SecretStr`` and no ``repr`` shows it.
    """

    user_code: str
    """The code the person types on the Hub's page, e.g. ``52AT-FLYZ``."""
    verification_uri: str
    """The page where the person enters ``user_code``."""
    verification_uri_complete: str
    """The same page with the code filled in (``verification_uri`` when the Hub gives none)."""
    expires_at: datetime
    """When the code expires; polling stops then (timezone-aware, UTC)."""
    interval: float
    """Seconds to wait between two polls (the Hub may ask for more with ``slow_down``)."""
    device_code: SecretStr = Field(repr=False)


def compact(user: UserInfo) -> UserInfo:
    """``user`` made smaller in place, for a cache that keeps it: its fields sets are shared
    with every model given the same fields, and its organisations with every cached user that
    has an equal one. Returns ``user``.

    Done where a user is kept (``MemoryCache``), not on validation: a whoami that is not
    cached has nothing to gain and would pay about 4 µs. Call it before the user is handed
    out (it replaces ``orgs`` of a frozen model).
    """
    _share_fields_set(user)
    if orgs := user.orgs:
        # Callers of one service mostly share a few organisations: equal (frozen) OrgInfo
        # objects are shared while any UserInfo holds them, which keeps a large whoami cache
        # small. Weak references: nothing is kept alive for the sake of sharing.
        object.__setattr__(user, "orgs", tuple([_shared_org(org) for org in orgs]))
    if (token := user.token) is not None:
        _share_fields_set(token)
        for scope in token.scoped:
            _share_fields_set(scope)
    return user
