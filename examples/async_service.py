"""The async API end to end, against the built-in Hub emulator (no network needed).

Run: python examples/async_service.py

A service receives tokens from its callers and asks who they are; a token the Hub rejects
and a Hub that fails are both ordinary values, not exceptions.
"""

from __future__ import annotations

import asyncio
import tempfile

from hub_auth import Err, ErrorKind, HubAuth, Ok
from hub_auth.testing import FakeHub, FakeUser, make_token


async def identify(auth: HubAuth, token: str) -> str:
    """What a request handler would do with a caller's token."""
    match await auth.whoami(token):
        case Ok(user):
            orgs = ", ".join(user.organizations) or "no organisations"
            return f"caller is {user.username} ({orgs})"
        case Err(error) if error.kind in (ErrorKind.UNAUTHORIZED, ErrorKind.INVALID_TOKEN):
            return f"refused: {error.message}"
        case Err(error):
            return f"could not check ({error.kind}): {error}"
    raise AssertionError("unreachable")


async def main() -> None:
    async with FakeHub() as hub:
        good = hub.add_token(
            make_token("ada"), FakeUser(name="ada-lovelace", orgs=["analytical-engines"])
        )
        with tempfile.TemporaryDirectory() as hf_home:
            async with HubAuth(endpoint=hub.url, hf_home=hf_home, read_env=False) as auth:
                print(await identify(auth, good))
                print(await identify(auth, make_token("stranger")))
                print(await identify(auth, "not-a-token"))
                hub.fail_next(500)
                print(await identify(auth, good))

                results = await asyncio.gather(*(auth.whoami(good) for _ in range(100)))
                print(f"100 concurrent checks: {sum(r.is_ok() for r in results)} ok")

                login = (await auth.login(good)).unwrap()
                print(f"logged in as {login.user.username}; stored as {login.token_name!r}")
                print(
                    "headers:",
                    [(k, v[:10] + "...") for k, v in (await auth.auth_headers()).unwrap()],
                )
                print("logout:", (await auth.logout()).unwrap().removed)


if __name__ == "__main__":
    asyncio.run(main())
