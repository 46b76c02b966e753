"""A logging filter that masks anything token-shaped, installed on the ``hub_auth`` logger.

hub_auth never logs a token on purpose; this is the second line of defence for the day a
message quotes something it should not (a Hub error text, a path, an argument). The filter
formats the record itself, scrubs the text with :func:`hub_auth._tokens.scrub`, and leaves
no arguments behind, so no handler can format the raw values again. Tracebacks and stack
text attached to the record are scrubbed too.

Importing this module installs the filter (once) on ``logging.getLogger("hub_auth")``.
Python applies a logger's filters only to records logged on that very logger, not to those
of its children: hub_auth modules therefore all log on ``"hub_auth"``; a module that wants a
child logger must call :func:`install` on it.
"""

from __future__ import annotations

import logging

from hub_auth._tokens import scrub

__all__ = ["LOGGER_NAME", "TokenMaskingFilter", "install"]

LOGGER_NAME = "hub_auth"

# Formats tracebacks exactly as the default formatter would, so handlers print the same text.
_FORMATTER = logging.Formatter()


class TokenMaskingFilter(logging.Filter):
    """Replace token-shaped text in a record's message, arguments and traceback with a mask.

    Never drops a record: it only rewrites it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep both parts rather than lose the record
            message = f"{record.msg} (arguments: {record.args!r})"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True

    def __repr__(self) -> str:
        return "<TokenMaskingFilter>"


def install(logger: logging.Logger | str = LOGGER_NAME) -> TokenMaskingFilter:
    """Add the masking filter to ``logger`` unless it already has one; return the filter."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    for existing in target.filters:
        if isinstance(existing, TokenMaskingFilter):
            return existing
    masking = TokenMaskingFilter()
    target.addFilter(masking)
    return masking


install()
