"""FakeHub's users: :class:`FakeUser` (what whoami-v2 answers for a token) and :func:`make_token`.

The lowest module of the emulator: it imports nothing from the rest of ``hub_auth.testing``.
:class:`TokenTable` is the part of FakeHub the OAuth modules use, as a Protocol, so that they
need not import the hub module that imports them.
"""

# No ``from __future__ import annotations``: the dataclasses' annotations are evaluated here,
# so typing.get_type_hints() still works once __init__ sets their __module__ to hub_auth.testing.

import copy
import hashlib
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["FakeUser", "TokenTable", "make_token"]

_TOKEN_ALPHABET = string.ascii_letters + string.digits
_TOKEN_BODY_LENGTH = 34
_DEFAULT_CREATED_AT = "2026-03-14T15:09:26.535Z"
_PRO_PERIOD_END = 1790000000


def make_token(seed: str | None = None) -> str:
    """Return a realistic user access token: ``hf_`` and 34 letters or digits.

    The same ``seed`` always gives the same token (handy for benchmarks run in separate
    processes); without a seed the token is random.
    """
    if seed is None:
        return random_secret("hf_")
    digest = hashlib.shake_256(f"hub_auth.testing:{seed}".encode()).digest(_TOKEN_BODY_LENGTH)
    return "hf_" + "".join(_TOKEN_ALPHABET[byte % len(_TOKEN_ALPHABET)] for byte in digest)


def random_secret(prefix: str, length: int = _TOKEN_BODY_LENGTH) -> str:
    """``prefix`` and ``length`` random letters or digits (tokens, codes, refresh tokens)."""
    return prefix + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def _hex_id(kind: str, name: str, length: int = 24) -> str:
    """A stable Mongo-style hex id, so a user looks the same in every run."""
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:length]


def _title(name: str) -> str:
    words = [word.capitalize() for word in re.split(r"[-_.\s]+", name) if word]
    return " ".join(words) or name


def _camel(key: str) -> str:
    if key.startswith("_") or "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _org_body(org: str | Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": org} if isinstance(org, str) else dict(org)
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("every org needs a non-empty 'name'")
    body: dict[str, Any] = {
        "type": "org",
        "id": _hex_id("org", name),
        "name": name,
        "fullname": _title(name),
        "email": None,
        "canPay": False,
        "avatarUrl": f"https://cdn-avatars.example.com/{_hex_id('org-avatar', name, 32)}.png",
        "periodEnd": None,
    }
    for key, value in fields.items():
        body[_camel(key)] = copy.deepcopy(value)
    return body


@dataclass
class FakeUser:
    """Who a fake token belongs to; :meth:`body` is what whoami-v2 answers for it.

    The defaults give a body shaped like the Hub's samples: ids and avatar derived from the
    name (stable across runs), ``fullname`` from the name, a ``write`` access token.
    ``email=None`` leaves ``email`` out, as the Hub does for some tokens.
    ``orgs`` takes names or dicts (snake_case keys such as ``role_in_org`` become camelCase).
    ``token_name`` (the token's display name, under which a login stores it) defaults to
    ``<name>-token``, so two users' logins are two entries; ``None`` gives an OAuth-style
    ``auth`` without ``accessToken``.
    A ``fineGrained`` role without ``fine_grained`` gets a read-only scope on the user.
    ``expires_at`` is only reported: an expired token is not refused (use ``revoke``).
    ``extra`` is merged last into the top level, to add fields the Hub may send one day.
    """

    name: str
    fullname: str | None = None
    email: str | None = None
    email_verified: bool = True
    is_pro: bool = False
    can_pay: bool = False
    orgs: Sequence[str | Mapping[str, Any]] = field(default_factory=list)
    token_name: str | None = ""  # "": <name>-token (see __post_init__)
    role: str = "write"
    fine_grained: Mapping[str, Any] | None = None
    expires_at: str | None = None
    token_created_at: str = _DEFAULT_CREATED_AT
    auth_type: str = "access_token"
    account_type: str = "user"
    id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token_name == "":
            self.token_name = f"{self.name}-token"

    def body(self) -> dict[str, Any]:
        """The whoami-v2 JSON body for this user (a fresh dict on every call)."""
        user_id = self.id or _hex_id("user", self.name)
        body: dict[str, Any] = {
            "type": self.account_type,
            "id": user_id,
            "name": self.name,
            "fullname": self.fullname if self.fullname is not None else _title(self.name),
        }
        if self.email is not None:
            body["email"] = self.email
            body["emailVerified"] = self.email_verified
        body.update(
            {
                "plan": "PRO" if self.is_pro else "NO_PLAN",
                "canPay": self.can_pay,
                "isPro": self.is_pro,
                "periodEnd": _PRO_PERIOD_END if self.is_pro else None,
                "avatarUrl": f"/avatars/{_hex_id('avatar', self.name, 32)}.svg",
                "billingMode": "postpaid",
                "orgs": [_org_body(org) for org in self.orgs],
                "auth": self._auth_body(user_id),
            }
        )
        body.update(copy.deepcopy(dict(self.extra)))
        return body

    def _auth_body(self, user_id: str) -> dict[str, Any]:
        auth: dict[str, Any] = {"type": self.auth_type}
        if self.expires_at is not None:
            auth["expiresAt"] = self.expires_at
        if self.token_name is None:
            return auth
        access: dict[str, Any] = {
            "displayName": self.token_name,
            "role": self.role,
            "createdAt": self.token_created_at,
        }
        if self.fine_grained is not None:
            access["fineGrained"] = copy.deepcopy(dict(self.fine_grained))
        elif self.role == "fineGrained":
            access["fineGrained"] = {
                "canReadGatedRepos": False,
                "global": [],
                "scoped": [
                    {
                        "entity": {"_id": user_id, "type": "user", "name": self.name},
                        "permissions": ["repo.content.read", "repo.access.read"],
                    }
                ],
            }
        auth["accessToken"] = access
        return auth


class TokenTable(Protocol):
    """What the OAuth side needs from FakeHub: its URL and its token table.

    FakeHub satisfies it; the OAuth modules sit below the hub module, which imports them.
    """

    @property
    def url(self) -> str: ...

    def add_token(
        self,
        token: str | None = None,
        user: FakeUser | None = None,
        *,
        expires_at: float | None = None,
    ) -> str: ...

    def _unexpired_user(self, token: str) -> FakeUser | None:
        """The user of ``token`` if it is registered and has not expired."""
