"""``hub-auth demo``: every operation of ``HubAuth`` against a local FakeHub.

The demo starts a :class:`~hub_auth.testing.FakeHub` in the running event loop, keeps its
login files in a temporary folder and ignores the environment (``read_env=False``), so the
user's own login, ``HF_TOKEN`` and ``HF_ENDPOINT`` neither change nor interfere. ``logout``
runs ``git credential reject``; while the demo runs, git is pointed at an empty configuration
so the user's credential helpers are not asked either.

Each step says what it did and whether that is what should happen; the first step that
misbehaves stops the demo and ``run_demo`` returns ``False``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind
from hub_auth._result import Err, Ok
from hub_auth._tokens import mask_token
from hub_auth.testing import FakeHub, FakeUser, make_token

__all__ = ["DEMO_USER", "run_demo"]

DEMO_USER = FakeUser(
    name="ada-lovelace",
    fullname="Ada Lovelace",
    email="ada@example.com",
    orgs=["analytical-engines"],
    token_name="ada-workstation",
    role="write",
)
"""Who the demo logs in as."""

_Step = Callable[[], Awaitable[tuple[bool, str]]]


async def run_demo(
    echo: Callable[[str], None],
    *,
    marks: tuple[str, str] = ("✓", "✗"),
    prepare: Callable[[FakeHub], None] | None = None,
) -> bool:
    """Run login → whoami → auth_headers → validate_token → list_tokens → logout.

    Args:
        echo: Prints one line.
        marks: What starts the line of a step that went as expected, and of one that did not.
        prepare: Called with the started FakeHub before the first step (tests use it to
            inject faults).

    Returns:
        ``True`` when every step went as expected.
    """
    good_mark, bad_mark = marks
    token = make_token()
    with tempfile.TemporaryDirectory(prefix="hub-auth-demo-") as scratch:
        folder = Path(scratch)
        hf_home = folder / "hf_home"
        async with FakeHub(tokens={token: DEMO_USER}) as hub:
            if prepare is not None:
                prepare(hub)
            echo(f"hub-auth demo: a Hub emulator at {hub.url}, login files in {hf_home}")
            echo("(your own login files, environment and git credentials are left alone)")
            with _isolated_git(folder):
                async with HubAuth(endpoint=hub.url, hf_home=hf_home, read_env=False) as auth:
                    for name, step in _steps(auth, hub, token):
                        went_well, detail = await step()
                        echo(f"{good_mark if went_well else bad_mark} {name}: {detail}")
                        if not went_well:
                            return False
    echo("Every step went as expected.")
    return True


def _steps(auth: HubAuth, hub: FakeHub, token: str) -> list[tuple[str, _Step]]:
    unknown = make_token()
    malformed = "not-a-token"

    async def login() -> tuple[bool, str]:
        match await auth.login(token):
            case Ok(info):
                return info.token_name == DEMO_USER.token_name, (
                    f"logged in as {info.user.username} (token stored as {info.token_name!r})"
                )
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def whoami() -> tuple[bool, str]:
        match await auth.whoami():
            case Ok(user):
                role = user.token.role if user.token else None
                return user.username == DEMO_USER.name, (
                    f"{user.username} ({user.fullname}), orgs: {', '.join(user.organizations)}, "
                    f"token role: {role}"
                )
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def auth_headers() -> tuple[bool, str]:
        match await auth.auth_headers():
            case Ok(headers):
                shown = ", ".join(
                    f"{key}: Bearer {mask_token(value.removeprefix('Bearer '))}"
                    for key, value in headers
                )
                return headers == [("authorization", f"Bearer {token}")], shown
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def validate_good() -> tuple[bool, str]:
        match await auth.validate_token(token):
            case Ok():
                return True, f"the Hub accepts {mask_token(token)}"
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def validate_unknown() -> tuple[bool, str]:
        match await auth.validate_token(unknown):
            case Ok():
                return False, f"the Hub accepted the unknown token {mask_token(unknown)}"
            case Err(error):
                return error.kind is ErrorKind.INVALID_TOKEN, (
                    f"{mask_token(unknown)} rejected, as it should be "
                    f"({error.kind}: {error.message})"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def validate_malformed() -> tuple[bool, str]:
        before = hub.request_count
        match await auth.validate_token(malformed):
            case Ok():
                return False, f"{malformed!r} was accepted"
            case Err(error):
                asked = hub.request_count != before
                return error.kind is ErrorKind.INVALID_TOKEN and not asked, (
                    f"{malformed!r} refused without asking the Hub ({error.kind}: {error.message})"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def list_tokens() -> tuple[bool, str]:
        match await auth.list_tokens():
            case Ok(tokens):
                shown = "; ".join(
                    f"{'*' if entry.active else ' '} {entry.name} {entry.masked_token}"
                    for entry in tokens
                )
                expected = [(DEMO_USER.token_name, True)]
                return [(entry.name, entry.active) for entry in tokens] == expected, shown
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def logout() -> tuple[bool, str]:
        match await auth.logout():
            case Ok(info):
                left = await auth.get_token()
                gone = isinstance(left, Err) and left.error.kind is ErrorKind.NO_TOKEN
                removed = ", ".join(repr(name) for name in info.removed)
                return gone and info.removed == (DEMO_USER.token_name,), (
                    f"removed {removed}; "
                    + ("no token is left" if gone else "a token is still there")
                )
            case Err(error):
                return False, f"failed: {error}"
        raise AssertionError("unreachable")  # pragma: no cover

    return [
        ("login", login),
        ("whoami", whoami),
        ("auth_headers", auth_headers),
        ("validate_token (the good token)", validate_good),
        ("validate_token (an unknown token)", validate_unknown),
        ("validate_token (a malformed token)", validate_malformed),
        ("list_tokens", list_tokens),
        ("logout", logout),
    ]


@contextlib.contextmanager
def _isolated_git(folder: Path) -> Iterator[None]:
    """Point git at an empty configuration with no credential helper, then restore the env."""
    empty = folder / "gitconfig"
    empty.touch()
    isolated = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(empty),
        # Command-line level configuration wins over a repository's own: an empty helper
        # clears any helper the current directory's repository configures.
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
    }
    saved = {name: os.environ.get(name) for name in isolated}
    os.environ.update(isolated)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
