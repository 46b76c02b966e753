"""Token format checks and masking. No I/O, no network: cheap enough for every call."""

from __future__ import annotations

import re

__all__ = ["MAX_TOKEN_LENGTH", "MaskedStr", "check_format", "clean_token", "mask_token", "scrub"]

MAX_TOKEN_LENGTH = 4096
"""Longer than any real token (``hf_jwt_`` CI tokens included); anything above is refused."""

_MIN_TOKEN_LENGTH = 19
"""``hf_`` and 16 more characters (real ones have 34): the same minimum as ``TOKEN_PATTERN``,
so every token that may go into a header is also masked by ``scrub``."""
# Printable ASCII without space: a CR/LF/NUL in a token is a header-injection attempt.
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
# Anything that looks like a Hub token, for scrubbing text before it is logged.
# At least 16 characters after the prefix, so words like ``hf_home`` are left alone.
TOKEN_PATTERN = re.compile(r"(?:hf_|api_org_)[A-Za-z0-9_\-.]{16,}")


class MaskedStr(str):
    """A plain ``str`` everywhere (headers, files, comparisons) except its ``repr``, which masks
    anything token-shaped: a token inside a returned value never leaks through a ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(scrub(str(self)))


def clean_token(raw: str | None) -> str | None:
    """Strip surrounding whitespace and newlines as huggingface_hub does; empty means none."""
    if raw is None:
        return None
    cleaned = raw.replace("\r", "").replace("\n", "").strip()
    return cleaned or None


def check_format(token: str) -> str | None:
    """Return ``None`` when ``token`` looks like a Hub token, else why it does not.

    The reason never repeats the token.
    """
    if not isinstance(token, str):
        return f"a token must be a str, not {type(token).__name__}"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"the token is too long ({len(token)} characters, at most {MAX_TOKEN_LENGTH})"
    if _PRINTABLE.fullmatch(token) is None:
        return "the token contains whitespace, control or non-ASCII characters"
    if token.startswith("api_org_"):
        return "organisation API tokens (api_org_...) cannot be used; use a user access token"
    if not token.startswith("hf_"):
        return "a Hub token starts with 'hf_'"
    if len(token) < _MIN_TOKEN_LENGTH:
        return "the token is too short"
    return None


def mask_token(token: str) -> str:
    """Show a token the way a person can recognise it without it being usable: ``hf_****abcd``."""
    if len(token) <= 8:
        return "hf_****" if token.startswith("hf_") else "****"
    prefix = "hf_" if token.startswith("hf_") else token[:3]
    return f"{prefix}****{token[-4:]}"


def scrub(text: str) -> str:
    """Replace anything token-shaped in ``text`` with a mask (for log records)."""
    return TOKEN_PATTERN.sub(lambda m: mask_token(m.group(0)), text)
