"""Settings: where the Hub is and where the login files live, resolved once per client.

Order for each value: the explicit argument, then the environment (unless ``read_env=False``),
then huggingface_hub's default. Paths follow huggingface_hub exactly so both tools share files:

- ``HF_HOME``: ``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``.
- token file: ``$HF_TOKEN_PATH``, else ``$HF_HOME/token``; ``stored_tokens`` sits beside it.

This module is imported by the CLI's local commands (``hub-auth token`` reads
``HF_OIDC_RESOURCE`` through ``oidc_resource``), so it imports only a few standard modules:
not aiohttp, not asyncio, not even ``hub_auth._oauth`` (hashlib, ipaddress) until an endpoint
is checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from hub_auth._tokens import clean_token, scrub

__all__ = [
    "DEFAULT_ENDPOINT",
    "ENV_TOKEN_NAMES",
    "OIDC_RESOURCE_ENV",
    "Settings",
    "endpoint_origin",
    "env_flag",
    "env_override_note",
    "env_still_set_note",
    "env_token",
    "is_offline",
    "oidc_resource",
    "openid_provider_url",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
ENV_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
"""Environment variables holding a token, in huggingface_hub's order of precedence."""
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
OIDC_RESOURCE_ENV: Final = "HF_OIDC_RESOURCE"
"""Turns on the OIDC token exchange in CI (``hub_auth._oauth.exchange``)."""


def oidc_resource(environ: Mapping[str, str]) -> str | None:
    """``HF_OIDC_RESOURCE`` (stripped), or ``None`` when OIDC is not turned on."""
    value = environ.get(OIDC_RESOURCE_ENV, "").strip()
    return value or None


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """Read a boolean environment variable the way huggingface_hub does (1/ON/YES/TRUE)."""
    value = environ.get(name)
    return value is not None and value.strip().upper() in _TRUE_VALUES


def env_token(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The token from the environment and the variable it came from, or ``None``.

    Surrounding whitespace is stripped and an empty value counts as unset (then the next
    variable is tried). The token is a ``MaskedStr``: its ``repr`` (an error reporter
    capturing local variables) masks it.
    """
    for name in ENV_TOKEN_NAMES:
        if (cleaned := clean_token(environ.get(name))) is not None:
            return name, cleaned
    return None


def is_offline(environ: Mapping[str, str]) -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids network calls."""
    return env_flag(environ, "HF_HUB_OFFLINE") or env_flag(environ, "TRANSFORMERS_OFFLINE")


def env_override_note(environ: Mapping[str, str], token: str | None) -> str | None:
    """A note for the user when an environment token overrides ``token`` in the token file."""
    found = env_token(environ)
    if found is None or found[1] == token:
        return None
    return (
        f"the environment variable {found[0]} is set and overrides the token file; "
        "unset it to use the stored login"
    )


def env_still_set_note(environ: Mapping[str, str]) -> str | None:
    """After a logout: a note when an environment variable still holds a token."""
    found = env_token(environ)
    if found is None:
        return None
    return (
        f"the environment variable {found[0]} is still set: it still authenticates; "
        "unset it to log out completely"
    )


def _expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path)))


def default_hf_home(environ: Mapping[str, str]) -> Path:
    """``HF_HOME`` as huggingface_hub resolves it."""
    if hf_home := environ.get("HF_HOME"):
        return _expand(hf_home)
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _expand(os.path.join(cache, "huggingface"))


def normalize_endpoint(endpoint: str, source: str = "the endpoint argument") -> str:
    """Check an endpoint URL and drop its trailing slash; raise ``ValueError`` when unusable.

    ``source`` says where the value came from (``HF_ENDPOINT``, ``--endpoint``, the endpoint
    argument): the message names it, shows only the value's origin (``scheme://host:port``,
    never a user, password, path or query) and says what to set instead, in one line.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
    problem = _endpoint_problem(endpoint.strip())
    if problem is not None:
        if source == "HF_ENDPOINT":
            advice = f"set HF_ENDPOINT to a URL such as {DEFAULT_ENDPOINT}, or unset it"
        elif source.startswith("--"):
            advice = f"give {source} a URL such as {DEFAULT_ENDPOINT}"
        else:
            advice = f"pass a URL such as {DEFAULT_ENDPOINT}"
        shown = endpoint_origin(endpoint)
        named = f"the Hub endpoint {shown!r}" if shown != _NOT_SHOWN else "the Hub endpoint"
        raise ValueError(f"{named} (from {source}) is not valid: {problem}; {advice}")
    return endpoint.strip().rstrip("/")


def _endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with an endpoint URL, in words that never quote its secret parts."""
    try:
        parts = urlsplit(endpoint)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a bad IPv6 literal, or a port out of range / not a number
        return "the endpoint must be an http(s) URL with a valid host and port"
    if parts.scheme and parts.scheme not in ("http", "https"):
        scheme = parts.scheme[:20]
        return f"the endpoint must be an http(s) URL with a host (its scheme is {scheme!r})"
    if not parts.scheme or not parts.netloc:
        return "the endpoint must be an http(s) URL with a host (it has no scheme://host)"
    if not parts.hostname:
        return "the endpoint must be an http(s) URL with a host (it has none)"
    if not port_ok:
        return "its port must be a number from 1 to 65535"
    if parts.username or parts.password:
        return "it must not carry credentials (user or password)"
    if parts.query or parts.fragment:
        return "it must not have a query or fragment"
    return None


# What an endpoint without scheme://host may show of itself in an error: a bare host name
# (`huggingface.co`, `localhost:8000`), nothing that could carry a password, query or path.
_SHOWN_AS_IS = re.compile(r"[A-Za-z0-9.:\-\[\]]{1,100}")
_NOT_SHOWN = "a value that is not a URL (not shown)"


def endpoint_origin(endpoint: str) -> str:
    """An endpoint as messages show it: ``scheme://host[:port]``, without the user and
    password, path, query and fragment it may carry (any of which can hold a secret)."""
    scheme = ""
    try:
        parts = urlsplit(endpoint.strip())
        scheme = parts.scheme
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad IPv6 literal or port
        host, port = None, None
    if scheme and host:
        host = f"[{host}]" if ":" in host else host
        return scrub(f"{scheme}://{host}" + (f":{port}" if port is not None else ""))
    bare = scrub(endpoint.strip())
    return bare if _SHOWN_AS_IS.fullmatch(bare) else _NOT_SHOWN


def is_insecure_endpoint(endpoint: str) -> bool:
    """Plain http to a host other than loopback: tokens would cross the network in clear.

    Loopback is ``hub_auth._oauth.is_loopback_host``'s rule (127.0.0.0/8, ``::1``, the name
    ``localhost``); every other name warns, whatever it looks like.
    """
    from hub_auth._oauth import is_loopback_host  # hashlib, ipaddress: not for `hub-auth token`

    parts = urlsplit(endpoint)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname)


def openid_provider_url(
    provider_url: str | None, environ: Mapping[str, str], *, hub_endpoint: str | None = None
) -> str:
    """The OpenID provider to sign in with (``HubOAuth``), checked and without trailing slash.

    The argument, else ``OPENID_PROVIDER_URL`` (a Space with ``hf_oauth: true`` sets it), else
    ``hub_endpoint`` (the endpoint of a ``HubAuth`` the caller shares), else the Hub endpoint
    as ``Settings`` resolves it (``HF_ENDPOINT``, else the default). Raises ``ValueError``
    naming the source of an unusable value.
    """
    if provider_url:
        return normalize_endpoint(provider_url, "provider_url")
    if from_space := environ.get("OPENID_PROVIDER_URL"):
        return normalize_endpoint(from_space, "OPENID_PROVIDER_URL")
    if hub_endpoint:
        return normalize_endpoint(hub_endpoint)
    if hf_endpoint := environ.get("HF_ENDPOINT"):
        return normalize_endpoint(hf_endpoint, "HF_ENDPOINT")
    return DEFAULT_ENDPOINT


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved configuration of one client (immutable)."""

    endpoint: str
    token_path: Path
    read_env: bool
    timeout: float
    connect_timeout: float
    offline: bool = False
    """``HF_HUB_OFFLINE`` at construction (read once, as huggingface_hub reads it at import)."""

    @property
    def host(self) -> str:
        return (urlsplit(self.endpoint).hostname or "").lower()

    @classmethod
    def resolve(
        cls,
        *,
        endpoint: str | None = None,
        hf_home: str | os.PathLike[str] | None = None,
        token_path: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        read_env: bool = True,
        environ: Mapping[str, str] | None = None,
        endpoint_source: str | None = None,
    ) -> Settings:
        """Resolve every setting from the arguments, then the environment, then defaults.

        Raises ``ValueError`` (one line, naming where the value came from) for an unusable
        endpoint or timeout: a client is never created with a configuration it cannot use.
        ``endpoint_source`` names where an ``endpoint`` argument came from in that message
        (the CLI passes ``"--endpoint"``); ``HF_ENDPOINT`` is named when it was used.
        """
        env: Mapping[str, str] = (os.environ if environ is None else environ) if read_env else {}
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if endpoint is not None:
            source = endpoint_source or "the endpoint argument"
        elif env.get("HF_ENDPOINT"):
            endpoint, source = env["HF_ENDPOINT"], "HF_ENDPOINT"
        else:
            endpoint, source = DEFAULT_ENDPOINT, "the default"
        if token_path is not None:
            resolved_token_path = _expand(os.fspath(token_path))
        elif hf_home is not None:
            resolved_token_path = _expand(os.fspath(hf_home)) / "token"
        elif env_token_path := env.get("HF_TOKEN_PATH"):
            resolved_token_path = _expand(env_token_path)
        else:
            resolved_token_path = default_hf_home(env) / "token"
        return cls(
            endpoint=normalize_endpoint(endpoint, source),
            token_path=resolved_token_path,
            read_env=read_env,
            timeout=float(timeout),
            connect_timeout=float(connect_timeout if connect_timeout is not None else timeout),
            offline=is_offline(env),
        )
