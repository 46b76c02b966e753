"""Settings: where the Hub is and where the login files live, resolved once per client.

Order for each value: the explicit argument, then the environment (unless ``read_env=False``),
then huggingface_hub's default. Paths follow huggingface_hub exactly so both tools share files:

- ``HF_HOME``: ``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``.
- token file: ``$HF_TOKEN_PATH``, else ``$HF_HOME/token``; ``stored_tokens`` sits beside it.

This module is imported by the CLI's local commands, so it must not import aiohttp.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hub_auth._tokens import clean_token, scrub

__all__ = [
    "DEFAULT_ENDPOINT",
    "ENV_TOKEN_NAMES",
    "Settings",
    "endpoint_origin",
    "env_flag",
    "env_override_note",
    "env_still_set_note",
    "env_token",
    "is_offline",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
ENV_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
"""Environment variables holding a token, in huggingface_hub's order of precedence."""
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
# By name only this one: a resolver may send any other name (``*.localhost`` included, and
# certainly ``127.evil.example``) across the network.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


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


def normalize_endpoint(endpoint: str) -> str:
    """Check an endpoint URL and drop its trailing slash; raise ``ValueError`` when unusable."""
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
    parts = urlsplit(endpoint.strip())
    shown = endpoint_origin(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL with a host, got {shown!r}")
    if parts.username or parts.password:
        raise ValueError(f"endpoint {shown!r} must not carry credentials (user or password)")
    if parts.query or parts.fragment:
        raise ValueError(f"endpoint {shown!r} must not have a query or fragment")
    return endpoint.strip().rstrip("/")


# What an endpoint without scheme://host may show of itself in an error: a bare host name
# (`huggingface.co`, `localhost:8000`), nothing that could carry a password, query or path.
_SHOWN_AS_IS = re.compile(r"[A-Za-z0-9.:\-\[\]]{1,100}")


def endpoint_origin(endpoint: str) -> str:
    """An endpoint as messages show it: ``scheme://host[:port]``, without the user and
    password, path, query and fragment it may carry (any of which can hold a secret)."""
    try:
        parts = urlsplit(endpoint.strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad IPv6 literal or port
        host, port = None, None
    if parts.scheme and host:
        host = f"[{host}]" if ":" in host else host
        return scrub(f"{parts.scheme}://{host}" + (f":{port}" if port is not None else ""))
    bare = scrub(endpoint.strip())
    return bare if _SHOWN_AS_IS.fullmatch(bare) else "a value that is not a URL (not shown)"


def is_insecure_endpoint(endpoint: str) -> bool:
    """Plain http to a host other than loopback: tokens would cross the network in clear.

    Loopback means an IP literal in 127.0.0.0/8 or ``::1`` (an IPv4-mapped ``::ffff:127.x``
    too), or the name ``localhost``. Every other name warns, whatever it looks like
    (``http://127.evil.example`` is a DNS name, not an address).
    """
    parts = urlsplit(endpoint)
    return parts.scheme == "http" and not _is_loopback_host(parts.hostname or "")


def _is_loopback_host(host: str) -> bool:
    host = host.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


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
    ) -> Settings:
        """Resolve every setting from the arguments, then the environment, then defaults."""
        env: Mapping[str, str] = (os.environ if environ is None else environ) if read_env else {}
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if endpoint is None:
            endpoint = env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
        if token_path is not None:
            resolved_token_path = _expand(os.fspath(token_path))
        elif hf_home is not None:
            resolved_token_path = _expand(os.fspath(hf_home)) / "token"
        elif env_token_path := env.get("HF_TOKEN_PATH"):
            resolved_token_path = _expand(env_token_path)
        else:
            resolved_token_path = default_hf_home(env) / "token"
        return cls(
            endpoint=normalize_endpoint(endpoint),
            token_path=resolved_token_path,
            read_env=read_env,
            timeout=float(timeout),
            connect_timeout=float(connect_timeout if connect_timeout is not None else timeout),
            offline=is_offline(env),
        )
