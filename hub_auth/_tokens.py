"""Token format checks and masking. No I/O, no network: cheap enough for every call.

One character set, ``_TOKEN_CHARS`` (letters, digits, ``_``, ``-``, ``.``: what user, OAuth and
``hf_jwt_`` tokens are made of), serves both sides: ``check_format`` accepts nothing else after
``hf_``, and ``scrub`` masks any run of it after ``hf_``. So every token that may go into a
header is also masked whole in a log line. ``MaskedStr`` does not depend on that: its ``repr``
masks the whole value, whatever it holds.
"""

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
_TOKEN_CHARS = r"[A-Za-z0-9_\-.]"
_TOKEN_BODY = re.compile(_TOKEN_CHARS + "+")
# Every check of ``check_format`` at once, for the common case (a well-formed token): one
# regex instead of two and four tests; a token it refuses goes through them to learn why.
_WELL_FORMED = re.compile(
    "hf_" + _TOKEN_CHARS + f"{{{_MIN_TOKEN_LENGTH - 3},{MAX_TOKEN_LENGTH - 3}}}"
)
well_formed = _WELL_FORMED.fullmatch
"""``check_format``'s first test: a match when a ``str`` is a well-formed token, else ``None``
(then ``check_format`` says why). For a hot path that needs no reason."""
# Anything that looks like a Hub token, for scrubbing text before it is logged.
# At least 16 characters after the prefix, so words like ``hf_home`` are left alone.
TOKEN_PATTERN = re.compile(r"(?:hf_|api_org_)" + _TOKEN_CHARS + "{16,}")
_AUTH_SCHEMES = ("Bearer ", "Basic ")


class MaskedStr(str):
    """A plain ``str`` everywhere (headers, files, comparisons, ``str()``, f-strings) except
    its ``repr``, which always masks the whole value: a token held in one (a local variable
    seen by an error reporter, a returned value in a log line) never leaks through a ``repr``.

    An ``Authorization`` value keeps its scheme readable: ``'Bearer hf_****abcd'``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        text = str(self)
        for scheme in _AUTH_SCHEMES:
            if text.startswith(scheme):
                return repr(scheme + mask_token(text[len(scheme) :]))
        return repr(mask_token(text))


def clean_token(raw: str | None) -> MaskedStr | None:
    """Strip surrounding whitespace and newlines as huggingface_hub does; empty means none.

    The token comes back as a ``MaskedStr``, so wherever it is kept its ``repr`` masks it.
    """
    if raw is None:
        return None
    cleaned = raw.replace("\r", "").replace("\n", "").strip()
    return MaskedStr(cleaned) if cleaned else None


def check_format(token: str) -> str | None:
    """Return ``None`` when ``token`` looks like a Hub token, else why it does not.

    The reason never repeats the token.
    """
    if not isinstance(token, str):
        return f"a token must be a str, not {type(token).__name__}"
    if well_formed(token) is not None:
        return None
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
    if _TOKEN_BODY.fullmatch(token, 3) is None:
        return (
            "the token contains characters a Hub token never has (after 'hf_' only letters, "
            "digits, '_', '-' and '.')"
        )
    return None


def mask_token(token: str) -> str:
    """Show a token the way a person can recognise it without it being usable: ``hf_****abcd``.

    Anything shorter than a real token shows no characters of its own beyond ``hf_``.
    """
    if len(token) < _MIN_TOKEN_LENGTH:
        return "hf_****" if token.startswith("hf_") else "****"
    prefix = "hf_" if token.startswith("hf_") else token[:3]
    return f"{prefix}****{token[-4:]}"


def scrub(text: str, *secrets: str) -> str:
    """Replace anything token-shaped in ``text`` with a mask (for log records and messages).

    ``secrets`` are values known to be secret whatever their shape (a refresh token, a device
    code): each occurrence becomes ``****`` first, for text a server may have echoed them in.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return TOKEN_PATTERN.sub(lambda m: mask_token(m.group(0)), text)
