"""Hub authentication from a plain script, without ``async``: ``HubAuthSync``.

Run it with ``python examples/sync_script.py``. So that it touches neither huggingface.co nor
your own login, it starts FakeHub (a local emulator of the Hub's whoami endpoint) in a
background thread and keeps the login files in a temporary folder. For real use, drop
``endpoint``, ``hf_home`` and ``read_env``: the defaults are huggingface_hub's.
"""

from __future__ import annotations

import sys
import tempfile

from hub_auth import Err, HubAuthSync, Ok
from hub_auth.testing import FakeHub


def main() -> int:
    with FakeHub() as hub, tempfile.TemporaryDirectory() as hf_home:
        token = hub.add_token(name="ada-lovelace", orgs=["analytical-engines"], token_name="laptop")
        print(f"FakeHub is listening on {hub.url}")

        # read_env=False: an HF_TOKEN in your environment must not take over the demo.
        with HubAuthSync(endpoint=hub.url, hf_home=hf_home, read_env=False) as auth:
            match auth.login(token):
                case Ok(info):
                    print(f"logged in as {info.user.username}; token stored as {info.token_name!r}")
                case Err(error):
                    print(f"login failed: {error.kind}: {error}")
                    return 1

            match auth.whoami():  # no argument: the token just stored
                case Ok(user):
                    orgs = ", ".join(user.organizations) or "none"
                    print(f"whoami: {user.username} (organizations: {orgs})")
                case Err(error):
                    print(f"whoami failed: {error.kind}: {error}")
                    return 1

            for stored in auth.list_tokens().unwrap():
                mark = "*" if stored.active else " "
                print(f"stored token {mark} {stored.name}  {stored.masked_token}")

            logout = auth.logout().unwrap()
            print(f"logged out; removed {', '.join(logout.removed)}")

            match auth.whoami():
                case Err(error):
                    print(f"whoami after logout: {error.kind} ({error})")
                case Ok(user):
                    print(f"still logged in as {user.username}?")
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
