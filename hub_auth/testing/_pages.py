"""The answers FakeHub's endpoints share: JSON bodies, OAuth errors, reason phrases, HTML pages.

Written once here and used by the whoami, OAuth and OpenID modules. It imports nothing from
the rest of ``hub_auth.testing``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

__all__ = ["JSON_TYPE", "error_json", "html_page", "json_response", "oauth_error", "reason"]

JSON_TYPE = "application/json; charset=utf-8"

# The device page's form posts to FakeHub itself; a page without a form does not mind.
_PAGE_CSP = "default-src 'none'; form-action 'self'"


def reason(status: int) -> str:
    """The reason phrase of ``status`` (``HTTP 599`` for a status without one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def error_json(message: str) -> bytes:
    """The Hub's error body: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    """A JSON answer that no cache keeps (tokens travel in these)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": JSON_TYPE, "Cache-Control": "no-store"},
    )


def oauth_error(status: int, error: str, description: str | None = None) -> web.Response:
    """An OAuth error answer (RFC 6749 §5.2): ``{"error": ..., "error_description": ...}``."""
    body: dict[str, str] = {"error": error}
    if description is not None:
        body["error_description"] = description
    return web.Response(
        status=status, body=json.dumps(body).encode(), headers={"Content-Type": JSON_TYPE}
    )


def html_page(
    title: str,
    body: str,
    *,
    status: int = 200,
    heading: str | None = None,
    style: str = "",
    csp: str = _PAGE_CSP,
) -> web.Response:
    """A small HTML page without script, titled ``title``; ``body``, ``heading`` (the ``h1``,
    by default the title) and ``style`` are already safe HTML and CSS."""
    head = f"<style>{style}</style>" if style else ""
    h1 = heading if heading is not None else html.escape(title)
    text = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>{head}</head>"
        f"<body><h1>{h1}</h1>{body}</body></html>"
    )
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",  # as the Hub: no consent inside someone's iframe
        },
    )
