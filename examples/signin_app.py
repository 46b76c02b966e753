"""A page with a "Sign in with Hugging Face" button (``hub_auth.fastapi.HubOAuth``).

Try it against FakeHub (no account, no network), then open http://127.0.0.1:8000/::

    python examples/signin_app.py --fake-hub

FakeHub plays the Hub: it shows a consent page for the user ``ada-lovelace``; approve, and the
page shows her username, avatar and organisations, with a "Sign out" button (a form that
POSTs to the logout route: a link from another site cannot sign anyone out).

On a Space, add ``hf_oauth: true`` (and ``hf_oauth_scopes: [read-memberships]`` to see the
organisations) to the Space's README: the Space then sets ``OAUTH_CLIENT_ID``,
``OAUTH_CLIENT_SECRET``, ``OAUTH_SCOPES``, ``OPENID_PROVIDER_URL`` and ``SPACE_HOST``, and::

    uvicorn examples.signin_app:app --host 0.0.0.0 --port 7860

Elsewhere, register an OAuth app in your Hugging Face settings (Connected apps) with the
redirect URI ``http://127.0.0.1:8000/oauth/huggingface/callback`` and run
``OAUTH_CLIENT_ID=... OAUTH_CLIENT_SECRET=... python examples/signin_app.py``.

Against a FakeHub started from the shell with an OAuth app (``--oauth-app NAME:SECRET`` prints
the client id), pass its URL and the app's credentials::

    python -m hub_auth.testing --port 8077 --tokens-file users.json --oauth-app demo:demo-secret
    python examples/signin_app.py --hub http://127.0.0.1:8077 --client-id ID \\
        --client-secret demo-secret
"""

import argparse
import errno
import socket
import sys
from html import escape
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from hub_auth.fastapi import HubOAuth, OAuthInfo

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; color: #111 }
.button { display: inline-block; padding: .7rem 1.2rem; border-radius: .6rem; color: #fff;
          background: #111; text-decoration: none; font-weight: 600 }
.user { display: flex; align-items: center; gap: 1rem }
.user img { width: 64px; height: 64px; border-radius: 50% }
.error { color: #b00020 }
"""


def create_app(oauth: HubOAuth) -> FastAPI:
    """The example app for ``oauth`` (a ``HubOAuth`` configured for this deployment).

    The routes name ``oauth`` in ``Annotated[..., Depends(oauth.optional_user)]``: FastAPI
    must evaluate that annotation, so this module does not use ``from __future__ import
    annotations`` (a string annotation could not see the local ``oauth``).
    """
    app = FastAPI(title="Sign in with Hugging Face (hub_auth example)")
    app.include_router(oauth.router)

    @app.get("/", response_class=HTMLResponse)
    async def home(
        request: Request, info: Annotated[OAuthInfo | None, Depends(oauth.optional_user)]
    ) -> str:
        if info is None:
            error = oauth.login_error(request)
            body = (f'<p class="error" id="error">{escape(error)}</p>' if error else "") + (
                # target=_top: on a Space the page is in an iframe, and the Hub's consent
                # page cannot be shown inside one.
                '<p><a class="button" id="signin" target="_top"'
                ' href="/oauth/huggingface/login?next=/">'
                "Sign in with Hugging Face</a></p>"
            )
        else:
            user = info.user
            orgs = "".join(f"<li>{escape(org.username)}</li>" for org in user.orgs)
            body = f"""
<div class="user">
  <img alt="avatar" src="{escape(user.picture or "")}">
  <div><strong id="username">{escape(user.username)}</strong><br>{escape(user.name or "")}</div>
</div>
<h2>Organisations</h2>
<ul id="orgs">{orgs or "<li>none</li>"}</ul>
<form method="post" action="/oauth/huggingface/logout?next=/">
  <button type="submit" id="signout">Sign out</button>
</form>"""
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Sign in with Hugging Face</title><style>{_STYLE}</style></head>"
            f"<body><h1>hub_auth sign-in example</h1>{body}</body></html>"
        )

    return app


def fake_hub_oauth(port: int, **options: Any) -> tuple[Any, HubOAuth]:
    """A FakeHub (in a thread) with an OAuth app, and the HubOAuth that signs in with it
    (``options``: more ``HubOAuth`` arguments, e.g. ``same_site="none"`` as on a Space)."""
    from hub_auth.testing import FakeHub, FakeUser

    hub = FakeHub().start_in_thread()
    hub.oauth.browser_user = FakeUser(  # who is signed in at the fake Hub
        name="ada-lovelace",
        orgs=[
            {"name": "analytical-engines", "role_in_org": "admin"},
            {"name": "difference-engines", "role_in_org": "read"},
        ],
    )
    registered = hub.oauth.register_app(
        name="hub_auth sign-in example",
        client_secret="example-secret",
        scopes=["read-memberships"],
        redirect_uris=[f"http://127.0.0.1:{port}/oauth/huggingface/callback"],
    )
    oauth = HubOAuth(
        client_id=registered.client_id,
        client_secret="example-secret",
        scopes="openid profile read-memberships",
        provider_url=hub.url,
        **options,
    )
    return hub, oauth


def __getattr__(name: str) -> FastAPI:
    # ``uvicorn examples.signin_app:app`` builds the app from the environment (a Space) on
    # first access, so importing this module never needs a client id.
    if name == "app":
        return create_app(HubOAuth())
    raise AttributeError(name)


_DESCRIPTION = """\
Serve a page with a "Sign in with Hugging Face" button on http://127.0.0.1:PORT/.

It signs in against FakeHub in this process (--fake-hub: no account, no network), against
another Hub or FakeHub (--hub URL, with the client id and secret of an OAuth app registered
there), or against huggingface.co with OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET from the
environment (as on a Space).
"""

_EPILOG = """\
examples:
  python examples/signin_app.py --fake-hub
  python -m hub_auth.testing --port 8077 --seed-users 1 --oauth-app demo:demo-secret
  python examples/signin_app.py --hub http://127.0.0.1:8077 \\
      --client-id <the printed id> --client-secret demo-secret
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/signin_app.py",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fake-hub", action="store_true", help="sign in against FakeHub")
    parser.add_argument(
        "--hub", metavar="URL", help="the Hub (or FakeHub) to sign in with (OPENID_PROVIDER_URL)"
    )
    parser.add_argument("--client-id", help="the OAuth app's client id (OAUTH_CLIENT_ID)")
    parser.add_argument(
        "--client-secret", help="the OAuth app's client secret (OAUTH_CLIENT_SECRET)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (8000)")
    args = parser.parse_args(argv)
    if args.fake_hub and (args.hub or args.client_id or args.client_secret):
        parser.error("--fake-hub makes its own FakeHub and app: drop --hub and --client-*")
    return args


def oauth_from_args(args: argparse.Namespace) -> HubOAuth:
    """The ``HubOAuth`` for ``--hub``/``--client-id``/``--client-secret`` (the environment
    fills in what they leave out)."""
    return HubOAuth(
        client_id=args.client_id, client_secret=args.client_secret, provider_url=args.hub
    )


def _listen(port: int) -> socket.socket | None:
    """A socket listening on 127.0.0.1:``port``, or None (after a one-line error) if taken."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"error: port {port} is in use; choose another with --port", file=sys.stderr)
        return None
    sock.listen()
    return sock


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    sock = _listen(args.port)  # before any URL is printed: it must be ours
    if sock is None:
        return 2
    port = sock.getsockname()[1]
    hub = None
    try:
        if args.fake_hub:
            hub, oauth = fake_hub_oauth(port)
            print(f"FakeHub at {hub.url}", flush=True)
        else:
            oauth = oauth_from_args(args)
        print(f"open http://127.0.0.1:{port}/", flush=True)
        config = uvicorn.Config(create_app(oauth), log_level="warning")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if hub is not None:
            hub.stop_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
