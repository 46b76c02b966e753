"""hub_auth.sync's default client follows HF_ENDPOINT, HF_HOME and HF_TOKEN_PATH (issue 23)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_auth import sync as hf_auth
from hub_auth._sync import HubAuthSync
from hub_auth._sync_support import DefaultClient
from hub_auth.testing import FakeHub

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from hub_auth import sync as hf_auth
    from hub_auth.testing import FakeHub

    with FakeHub() as first, FakeHub() as second:
        os.environ["HF_ENDPOINT"] = first.url
        os.environ["HF_TOKEN"] = first.add_token(name="ada")
        print(hf_auth.whoami().unwrap().username)
        old = hf_auth.default_client()

        os.environ["HF_ENDPOINT"] = second.url
        os.environ["HF_TOKEN"] = second.add_token(name="bob")
        print(hf_auth.whoami().unwrap().username)
        print(old.closed, hf_auth.default_client().endpoint == second.url)
        print(first.request_count, second.request_count)

        os.environ["HF_HOME"] = sys.argv[1]  # a new login folder: a new client, same Hub
        del os.environ["HF_TOKEN"]
        print(hf_auth.get_token().error.kind.value)
        print(str(hf_auth.default_client().token_path) == os.path.join(sys.argv[1], "token"))

        os.environ["HF_TOKEN_PATH"] = os.path.join(sys.argv[1], "elsewhere")
        print(hf_auth.default_client().token_path.name)

        mine = hf_auth.configure(endpoint=first.url)  # configured: kept whatever the env says
        os.environ["HF_ENDPOINT"] = second.url + "/"
        print(hf_auth.default_client() is mine)
    """
)


def test_a_script_that_changes_the_environment_between_calls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "home")],
        env={**env, "HF_HOME": str(tmp_path / "first-home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "ada",
        "bob",  # the new token went to the new Hub
        "True True",  # the old client was closed
        "1 1",
        "no_token",
        "True",
        "elsewhere",
        "True",
    ]


@pytest.fixture(scope="module")
def module_default() -> Iterator[None]:
    """The module's default as a fresh process has it, for the two tests below in turn."""
    saved = hf_auth._default
    hf_auth._default = DefaultClient(HubAuthSync)
    yield
    hf_auth._default.close()
    hf_auth._default = saved


# Two tests as docs/testing.md shows them: each gets its own FakeHub at its own URL, and the
# module functions follow HF_ENDPOINT from one test to the next.
@pytest.mark.usefixtures("module_default")
@pytest.mark.parametrize("name", ["ada", "bob"])
def test_the_fake_hub_fixture_with_module_functions(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", fake_hub.add_token(name=name))

    assert hf_auth.whoami().unwrap().username == name
    assert fake_hub.request_count == 1


def test_an_unusable_endpoint_keeps_the_previous_client(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = DefaultClient(HubAuthSync)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    first = default.get()
    monkeypatch.setenv("HF_ENDPOINT", "htp:/x")
    with pytest.raises(ValueError, match=r"\(from HF_ENDPOINT\)"):
        default.get()
    assert default.current is first
    assert not first.closed
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    assert default.get() is first  # back to what it was made from: the same client
    default.close()
    assert first.closed
