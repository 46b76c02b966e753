"""A bad endpoint is refused when the client is created, in one line naming its source."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hub_auth import HubAuth, HubAuthSync
from hub_auth import sync as hf_auth

SECRET = "s3cret-" + "x" * 10
BAD = ["htp:/x", "ftp://hub.example", f"https://user:{SECRET}@hub.example", "http://h:99999"]


def _one_line(message: str) -> None:
    assert "\n" not in message
    assert SECRET not in message
    assert "https://huggingface.co" in message  # what to set instead


@pytest.mark.parametrize("endpoint", BAD)
def test_hub_auth_names_the_argument(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"\(from the endpoint argument\) is not valid") as info:
        HubAuth(endpoint=endpoint, read_env=False)
    _one_line(str(info.value))
    assert "pass a URL such as" in str(info.value)


@pytest.mark.parametrize("endpoint", BAD)
def test_hub_auth_names_hf_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(ValueError, match=r"\(from HF_ENDPOINT\) is not valid") as info:
        HubAuth()
    _one_line(str(info.value))
    assert "set HF_ENDPOINT to a URL such as" in str(info.value)


def test_sync_client_and_configure_validate_at_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"'ftp://hub\.example' \(from the endpoint argument\)"):
        HubAuthSync(endpoint="ftp://hub.example", read_env=False)
    monkeypatch.setenv("HF_ENDPOINT", "htp:/x")
    with pytest.raises(ValueError, match=r"\(from HF_ENDPOINT\).*its scheme is 'htp'"):
        HubAuthSync()
    before = hf_auth._default.current
    with pytest.raises(ValueError, match=r"\(from HF_ENDPOINT\)"):
        hf_auth.configure()
    with pytest.raises(ValueError, match=r"\(from the endpoint argument\)"):
        hf_auth.configure(endpoint="htp:/x")
    assert hf_auth._default.current is before  # a refused configuration replaces nothing


def test_module_default_client_says_where_the_endpoint_came_from(tmp_path: object) -> None:
    env = {**os.environ, "HF_ENDPOINT": "htp:/x", "HF_HOME": str(tmp_path)}
    env.pop("HF_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-c", "from hub_auth import sync as hf_auth; hf_auth.get_token()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ValueError: the Hub endpoint (from HF_ENDPOINT) is not valid: the endpoint must be an "
        "http(s) URL with a host (its scheme is 'htp'); set HF_ENDPOINT to a URL such as "
        "https://huggingface.co, or unset it"
    )
    # One exception, not a chain of them.
    assert "During handling" not in done.stderr
    assert "direct cause" not in done.stderr


def test_good_endpoints_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1/")
    assert HubAuth().endpoint == "http://127.0.0.1:1"
    assert HubAuth(endpoint="https://hub.example/", read_env=False).endpoint == (
        "https://hub.example"
    )
