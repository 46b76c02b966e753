from __future__ import annotations

from pathlib import Path

import pytest

from hub_auth._login.store import TokenStore
from hub_auth._oauth import is_loopback_host
from hub_auth._settings import (
    DEFAULT_ENDPOINT,
    Settings,
    is_insecure_endpoint,
    openid_provider_url,
)


def test_defaults_follow_huggingface_hub(tmp_path: Path) -> None:
    s = Settings.resolve(environ={})
    assert s.endpoint == DEFAULT_ENDPOINT
    assert s.token_path == Path.home() / ".cache" / "huggingface" / "token"
    s = Settings.resolve(environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert s.token_path == tmp_path / "huggingface" / "token"
    s = Settings.resolve(environ={"HF_HOME": str(tmp_path / "h"), "XDG_CACHE_HOME": "/nope"})
    assert s.token_path == tmp_path / "h" / "token"
    assert TokenStore(s.token_path).stored_tokens_path == tmp_path / "h" / "stored_tokens"
    s = Settings.resolve(environ={"HF_HOME": "/a", "HF_TOKEN_PATH": str(tmp_path / "t" / "tok")})
    assert s.token_path == tmp_path / "t" / "tok"
    assert TokenStore(s.token_path).stored_tokens_path == tmp_path / "t" / "stored_tokens"


def test_arguments_beat_environment(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": "https://mirror.example/", "HF_TOKEN_PATH": "/x/token"}
    s = Settings.resolve(environ=env)
    assert s.endpoint == "https://mirror.example"
    s = Settings.resolve(endpoint="http://127.0.0.1:9", hf_home=tmp_path, environ=env)
    assert s.endpoint == "http://127.0.0.1:9"
    assert s.token_path == tmp_path / "token"


def test_read_env_false_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    monkeypatch.setenv("HF_HOME", "/somewhere")
    s = Settings.resolve(read_env=False)
    assert s.endpoint == DEFAULT_ENDPOINT
    assert "/somewhere" not in str(s.token_path)


def test_tilde_and_vars_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MYDIR", str(tmp_path))
    s = Settings.resolve(environ={"HF_HOME": "$MYDIR/hf"})
    assert s.token_path == tmp_path / "hf" / "token"


@pytest.mark.parametrize("endpoint", ["ftp://x", "huggingface.co", "https://", "https://h/?q=1"])
def test_bad_endpoint(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Settings.resolve(endpoint=endpoint, environ={})


@pytest.mark.parametrize("timeout", [0, -1, True, "3"])
def test_bad_timeout(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Settings.resolve(timeout=timeout, environ={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://hub.internal",
        "http://127.evil.example",
        "http://127.0.0.1.nip.io:8080",
        "http://localhost.evil.example",
        "http://app.localhost:8080",
        "http://[::2]:8080",
        "http://10.0.0.1",
        "http://[::ffff:10.0.0.1]",
        "http://0.0.0.0:8080",
    ],
)
def test_plain_http_to_anything_but_loopback_is_insecure(endpoint: str) -> None:
    assert is_insecure_endpoint(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:8000",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "https://hub.internal",
        "https://127.evil.example",
    ],
)
def test_loopback_addresses_and_https_are_not_insecure(endpoint: str) -> None:
    assert not is_insecure_endpoint(endpoint)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),  # a Host header or URL netloc keeps the brackets
        ("::ffff:127.0.0.1", True),
        ("app.localhost", False),
        ("127.evil.example", False),
        ("0.0.0.0", False),
        ("[::2]", False),
        ("", False),
        (None, False),
    ],
)
def test_one_loopback_rule_for_endpoints_and_sign_in_cookies(
    host: str | None, loopback: bool
) -> None:
    # The same function decides whether http to an endpoint warns (here) and whether
    # HubOAuth may set a cookie without Secure (hub_auth/fastapi/_oauth.py).
    assert is_loopback_host(host) is loopback


def test_openid_provider_url_order() -> None:
    space = {"OPENID_PROVIDER_URL": "https://hf.co/", "HF_ENDPOINT": "https://mirror.example"}
    assert openid_provider_url("https://given.example/", space) == "https://given.example"
    assert openid_provider_url(None, space) == "https://hf.co"
    assert (
        openid_provider_url(
            None, {"HF_ENDPOINT": "https://mirror.example"}, hub_endpoint="http://127.0.0.1:9"
        )
        == "http://127.0.0.1:9"
    )
    assert openid_provider_url(None, {"HF_ENDPOINT": "https://mirror.example"}) == (
        "https://mirror.example"
    )
    assert openid_provider_url(None, {}) == DEFAULT_ENDPOINT
    with pytest.raises(ValueError, match="from OPENID_PROVIDER_URL"):
        openid_provider_url(None, {"OPENID_PROVIDER_URL": "ftp://x"})


def test_a_client_for_a_name_that_only_looks_like_loopback_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hub_auth import HubAuth

    HubAuth(endpoint="http://127.evil.example", read_env=False)
    HubAuth(endpoint="http://127.0.0.1:8080", read_env=False)
    warned = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warned) == 1 and "127.evil.example" in warned[0]


def test_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    secret = "hf_" + "c" * 34
    with pytest.raises(ValueError, match="credentials") as info:
        Settings.resolve(endpoint=f"https://user:{secret}@hub.example", environ={})
    assert secret not in str(info.value)
