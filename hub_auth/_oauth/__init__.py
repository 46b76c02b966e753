"""The client side's OAuth vocabulary, written once: Hub paths, grant URNs, client ids, PKCE,
the loopback rule and the refresh margins.

``device.py`` (device login, RFC 8628), ``refresh.py`` (refresh of stored OAuth tokens),
``exchange.py`` (OIDC token exchange, RFC 8693) and ``hub_auth.fastapi``'s ``HubOAuth``
(authorization code + PKCE) import them from here. FakeHub keeps its own copies on purpose:
a test double that imported these could not catch a wrong one.

Standard library only: the CLI's local commands import ``_settings``, which imports the
loopback rule from here, and must start without aiohttp or pydantic.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import math
from collections.abc import Mapping
from typing import Final

__all__ = [
    "AUTHORIZATION_CODE_GRANT",
    "CLIENT_ID_ENV",
    "DEFAULT_CLIENT_ID",
    "DEVICE_CODE_GRANT",
    "DEVICE_PATH",
    "DISCOVERY_PATH",
    "ID_TOKEN_TYPE",
    "MAX_TOKEN_LIFETIME",
    "OIDC_REEXCHANGE_MARGIN",
    "REFRESH_TOKEN_GRANT",
    "SESSION_REFRESH_MARGIN",
    "STORED_TOKEN_REFRESH_MARGIN",
    "TOKEN_EXCHANGE_GRANT",
    "TOKEN_PATH",
    "USERINFO_PATH",
    "is_loopback_host",
    "oauth_client_id",
    "pkce_challenge",
    "token_lifetime",
]

# -- paths on the Hub (the OpenID provider) ---------------------------------------------------
TOKEN_PATH: Final = "/oauth/token"
"""Token endpoint: device-code polls, refreshes, OIDC token exchange."""
DEVICE_PATH: Final = "/oauth/device"
"""Device authorization endpoint (RFC 8628 §3.1)."""
USERINFO_PATH: Final = "/oauth/userinfo"
"""OpenID Connect userinfo (``HubOAuth`` takes the address from discovery; this is the Hub's)."""
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
"""OpenID Connect discovery document, relative to the provider URL."""

# -- grant types and token types ----------------------------------------------------------------
AUTHORIZATION_CODE_GRANT: Final = "authorization_code"
REFRESH_TOKEN_GRANT: Final = "refresh_token"
DEVICE_CODE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"

# -- client ids ---------------------------------------------------------------------------------
CLIENT_ID_ENV: Final = "HF_DEVICE_CODE_OAUTH_CLIENT_ID"
"""Overrides the device-login client id (staging and Enterprise Hubs), as in huggingface_hub."""
DEFAULT_CLIENT_ID: Final = "26be6b09-91c5-47da-9861-d2d2bb7a7e36"
"""huggingface_hub's public device-login client: tokens either tool made refresh with either."""


def oauth_client_id(environ: Mapping[str, str]) -> str:
    """``HF_DEVICE_CODE_OAUTH_CLIENT_ID``, else huggingface_hub's public client id."""
    return environ.get(CLIENT_ID_ENV) or DEFAULT_CLIENT_ID


# -- refresh margins: how long before expiry a token is renewed ---------------------------------
STORED_TOKEN_REFRESH_MARGIN: Final = 24 * 3600
"""A stored (device-login) OAuth token is refreshed once it has less than a day left, as
huggingface_hub does: a CLI may not run again for hours."""
OIDC_REEXCHANGE_MARGIN: Final = 300.0
"""A Hub token exchanged for a GitHub-minted id token is exchanged again 5 minutes before it
expires (GitHub can mint a new id token at any time)."""
SESSION_REFRESH_MARGIN: Final = 300.0
"""``HubOAuth``'s default: a signed-in session's access token is refreshed when it has less
than 5 minutes left (a request in flight must not carry a token that expires under it)."""


# -- token lifetimes (``expires_in``) -----------------------------------------------------------
MAX_TOKEN_LIFETIME: Final = 365 * 86400.0
"""The longest ``expires_in`` believed (one year): a larger one is clamped to it (``1e12``
seconds would otherwise overflow ``datetime`` and fail every request of that session)."""

_lifetime_warned = False


def token_lifetime(value: object, default: float) -> float:
    """A token answer's ``expires_in`` as seconds in ``[0, MAX_TOKEN_LIFETIME]``.

    Missing (``None``): ``default``. A negative value is 0 (already expired), a larger one
    than a year (infinity too) is a year, and anything that is not a number (NaN, a bool, a
    string) is ``default``. The first such value in a process is logged as a warning (later
    ones at debug): a provider that says so once says so on every answer.
    """
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        seconds = min(max(float(value), 0.0), MAX_TOKEN_LIFETIME)
        if seconds == value:
            return seconds
    else:
        seconds = default
    global _lifetime_warned
    level = logging.DEBUG if _lifetime_warned else logging.WARNING
    _lifetime_warned = True
    logging.getLogger("hub_auth").log(
        level,
        "the provider's expires_in (%.40r) is out of range; using %d seconds",
        value,
        seconds,
    )
    return seconds


# -- PKCE (RFC 7636) ----------------------------------------------------------------------------
def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a PKCE ``code_verifier``: BASE64URL(SHA256(verifier)),
    without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- the loopback rule --------------------------------------------------------------------------
# By name only this one: a resolver may send any other name (``*.localhost`` included, and
# certainly ``127.evil.example``) across the network.
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine for certain, so plain http to it stays local.

    Loopback means an IP literal in 127.0.0.0/8 or ``::1`` (bracketed or not; an IPv4-mapped
    ``::ffff:127.x`` too), or the name ``localhost``. Every other name is not, whatever it
    looks like (``127.evil.example`` is a DNS name, not an address).
    """
    if not host:
        return False
    host = host.lower()
    if host in _LOOPBACK_NAMES:
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
