"""``python -m hub_auth.testing``: run FakeHub in the foreground until stopped.

The options, the tokens file (``{token: {FakeUser fields}}``) and serving until SIGINT or
SIGTERM. ``__main__.py`` only calls :func:`main`; it lives here so that importing the package
(which re-exports ``main``) never imports ``__main__`` itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import hashlib
import json
import os
import re
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub_auth.testing._hub import NOMINAL_WINDOW, FakeHub
from hub_auth.testing._openid import SCOPES
from hub_auth.testing._users import FakeUser, make_token

__all__ = ["main"]

_FAKE_USER_FIELDS = {f.name for f in dataclasses.fields(FakeUser)}


def _user_fields(user: FakeUser) -> dict[str, Any]:
    """The fields of ``user`` that differ from the defaults (what a tokens file holds)."""
    fields: dict[str, Any] = {"name": user.name}
    for item in dataclasses.fields(FakeUser):
        if item.default is not dataclasses.MISSING:
            default: Any = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            continue
        if item.name == "token_name" and default == "":
            default = f"{user.name}-token"  # what __post_init__ derives
        value = getattr(user, item.name)
        if value != default:
            fields[item.name] = value
    return fields


# FakeHub's own statement of the Hub's token rule (it never imports the client's check):
# a tokens file with anything else would serve tokens that every client refuses to send.
_TOKEN_RULE = "a Hub token is 'hf_' followed by at least 16 letters, digits, '_', '-' or '.'"
_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9_\-.]{16,}")


def _load_tokens(path: Path) -> dict[str, FakeUser]:
    """Read ``{token: {FakeUser fields}}`` (or ``{token: name}``) from a JSON file.

    Every error names the file; none repeats a token.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the tokens file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object mapping tokens to users")
    users: dict[str, FakeUser] = {}
    for number, (token, fields) in enumerate(data.items(), start=1):
        if isinstance(fields, str):
            fields = {"name": fields}
        if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
            raise ValueError(f"{path}: each user needs at least a 'name'")
        if _TOKEN_SHAPE.fullmatch(token) is None:
            raise ValueError(
                f"{path}: the token of entry {number} ({fields['name']!r}) is refused: "
                f"{_TOKEN_RULE}, as hub_auth checks before sending one"
            )
        unknown = set(fields) - _FAKE_USER_FIELDS
        if unknown:
            raise ValueError(f"{path}: unknown FakeUser fields {sorted(unknown)}")
        users[token] = FakeUser(**fields)
    return users


_CLI_EXAMPLES = """\
examples:
  # two users with printed tokens, on a fixed port
  python -m hub_auth.testing --port 8077 --seed-users 2 --print-tokens
  HF_ENDPOINT=http://127.0.0.1:8077 HF_TOKEN=<a printed token> hub-auth whoami

  # users with organisations, from a JSON file
  echo '{"hf_ada_token_0123456789abcdefghijkl": {"name": "ada", "orgs": ["lab"]}}' > users.json
  python -m hub_auth.testing --tokens-file users.json --print-tokens

  # an OAuth app for "Sign in with Hugging Face" (prints its client id)
  python -m hub_auth.testing --port 8077 --oauth-app demo:demo-secret
  python examples/signin_app.py --hub http://127.0.0.1:8077 \\
      --client-id <the printed id> --client-secret demo-secret
"""

_NO_TOKENS_HINT = (
    "note: FakeHub serves no tokens, so every whoami answers 401; add users with "
    "--seed-users N --print-tokens or --tokens-file FILE (see --help)"
)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hub_auth.testing",
        description="Run FakeHub, a local emulator of the Hub's /api/whoami-v2, until stopped.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_CLI_EXAMPLES,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument(
        "--tokens-file", type=Path, help='JSON {token: {"name": ..., other FakeUser fields}}'
    )
    parser.add_argument(
        "--seed-users",
        type=int,
        default=0,
        metavar="N",
        help='add users user0..user{N-1} with tokens make_token("user<i>")',
    )
    parser.add_argument(
        "--tokens-out", type=Path, help="write every token and its user to this JSON file"
    )
    parser.add_argument(
        "--print-tokens",
        action="store_true",
        help="after the listening line, print one 'TOKEN NAME' line per token",
    )
    parser.add_argument("--rate-limit", type=int, help="per-IP quota per window (none)")
    parser.add_argument(
        "--rate-limit-window", type=float, default=NOMINAL_WINDOW, help="seconds (300)"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument(
        "--certfile", type=Path, help="serve https with this PEM certificate (chain)"
    )
    parser.add_argument(
        "--keyfile", type=Path, help="the certificate's PEM private key (default: in --certfile)"
    )
    parser.add_argument(
        "--oauth-app",
        action="append",
        default=[],
        type=_oauth_app,
        metavar="NAME[:SECRET]",
        help="register an OAuth app (without SECRET: a public one, PKCE only) and print its"
        " client id; the consent page signs in the first user of the tokens (repeatable)",
    )
    return parser.parse_args(argv)


def _oauth_app(value: str) -> tuple[str, str | None]:
    name, colon, secret = value.partition(":")
    if not name or (colon and not secret):
        raise argparse.ArgumentTypeError("expected NAME or NAME:SECRET (a name first)")
    return name, secret or None


def _register_apps(hub: FakeHub, apps: Sequence[tuple[str, str | None]]) -> list[str]:
    """Register ``apps`` (every scope, any loopback redirect); return a line for each.

    The client id derives from the name, so it is the same on every run (like the seeded
    users' tokens); the secret is never printed.
    """
    lines = []
    for name, secret in apps:
        client_id = hashlib.sha256(f"hub_auth.testing:{name}".encode()).hexdigest()[:24]
        hub.oauth.register_app(client_id, name=name, client_secret=secret, scopes=SCOPES)
        kind = "secret as given" if secret else "public, PKCE only"
        lines.append(f"OAuth app {name!r}: client id {client_id} ({kind})")
    return lines


def _server_ssl_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    if certfile is None:
        if keyfile is not None:
            raise ValueError("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def _serve(hub: FakeHub, print_tokens: bool, app_lines: Sequence[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with hub:
        lines = [f"FakeHub listening on {hub.url}"]
        if print_tokens:
            lines += [f"{token} {user.name}" for token, user in hub.tokens.items()]
        lines += app_lines
        print("\n".join(lines), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hub_auth.testing``."""
    args = _parse_args(argv)
    try:
        users = _load_tokens(args.tokens_file) if args.tokens_file else {}
        ssl_context = _server_ssl_context(args.certfile, args.keyfile)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hub = FakeHub(
        tokens=users,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
        rate_limit_window=args.rate_limit_window,
        ssl_context=ssl_context,
    )
    hub.default_delay = args.delay
    for index in range(args.seed_users):
        hub.add_token(make_token(f"user{index}"), name=f"user{index}")
    if args.tokens_out is not None:
        table = {token: _user_fields(user) for token, user in hub.tokens.items()}
        args.tokens_out.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    app_lines = _register_apps(hub, args.oauth_app)
    if hub.tokens:
        hub.oauth.browser_user = next(iter(hub.tokens.values()))
    else:
        print(_NO_TOKENS_HINT, file=sys.stderr, flush=True)
    try:
        asyncio.run(_serve(hub, args.print_tokens, app_lines))
    except OSError as exc:  # the address is taken, or not ours to bind
        if exc.errno == errno.EADDRINUSE:
            message = f"port {args.port} is in use; try --port 0"
        else:
            # asyncio's message repeats the address; the errno's own text does not.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            message = f"cannot listen on {args.host}:{args.port}: {reason}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
