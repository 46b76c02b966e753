"""Tokens stay masked in every repr, wherever they come from (issue 17, item 7).

An error reporter that captures local variables (Sentry, ``traceback`` with
``capture_locals=True``) formats each local with ``repr``: a token held as a plain ``str``
anywhere on the stack would be recorded. These tests resolve a token from each source and
raise an error in the middle of a real ``whoami`` to look at every frame's locals.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from hub_auth import HubAuth, MemoryCache, Ok
from hub_auth._login.store import TokenStore
from hub_auth._tokens import TOKEN_PATTERN, MaskedStr, check_format, mask_token, scrub
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN = make_token("masked")


class _HookFailed(RuntimeError):
    """Raised from inside aiohttp's request, as an unexpected bug would be."""


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(TOKEN, FakeUser(name="ada", token_name="laptop"))
    return hub


def _raw_in(text: str) -> bool:
    return TOKEN in text


# -- MaskedStr and the format check ----------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        TOKEN,
        "hf_short",
        "hf_" + "x" * 10 + "!" + "y" * 20,  # not token-shaped for scrub
        "not-a-token-at-all-but-secret",
        "eyJhbGciOiJSUzI1NiJ9.refresh.token",
    ],
)
def test_masked_str_repr_masks_whatever_it_holds(secret: str) -> None:
    masked = MaskedStr(secret)
    assert masked == secret and str(masked) == secret and f"{masked}" == secret
    assert secret not in repr(masked)
    assert secret not in repr([masked, {"k": masked}])
    header = MaskedStr(f"Bearer {secret}")
    assert repr(header).startswith("'Bearer ")
    assert secret not in repr(header)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80))
def test_every_accepted_token_is_masked_whole_by_scrub(tail: str) -> None:
    token = "hf_" + tail
    if check_format(token) is None:
        assert TOKEN_PATTERN.fullmatch(token) is not None
        assert scrub(f"x {token} y") == f"x {mask_token(token)} y"


@pytest.mark.parametrize("char", list("!\"#$%&'()*+,/:;<=>?@[\\]^`{|}~"))
def test_characters_scrub_does_not_know_are_refused(char: str) -> None:
    token = TOKEN[:10] + char + TOKEN[10:]
    reason = check_format(token)
    assert reason is not None and "characters" in reason
    assert token not in reason


# -- every source resolves to a masked value -------------------------------------------------


async def _resolved_from(source: str, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    if source == "file":
        TokenStore(hf_home / "token").save("laptop", TOKEN)
    elif source == "stored_tokens":
        store = TokenStore(hf_home / "token")
        store.save("laptop", TOKEN, activate=False)
        return store.get_token_by_name("laptop").unwrap()
    elif source in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(source, f" {TOKEN}\n")
    constructor = TOKEN if source == "constructor" else None
    async with HubAuth(endpoint="https://hub.example", token=constructor) as auth:
        if source == "set_token":
            assert await auth.set_token(TOKEN) == Ok(None)
        argument: str | SecretStr | None = {
            "argument": TOKEN,
            "secret argument": SecretStr(TOKEN),
        }.get(source)
        resolved = (await auth._resolve(argument)).unwrap()
        public = (await auth.get_token()).unwrap().get_secret_value() if argument is None else None
        return SimpleNamespace(resolved=resolved, public=public)


@pytest.mark.parametrize(
    "source",
    [
        "argument",
        "secret argument",
        "constructor",
        "set_token",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "file",
        "stored_tokens",
    ],
)
async def test_a_token_from_any_source_is_masked_in_repr(
    source: str, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = await _resolved_from(source, hf_home, monkeypatch)
    values = [outcome] if isinstance(outcome, str) else [outcome.resolved, outcome.public]
    for value in values:
        if value is None:
            continue
        assert value == TOKEN
        assert isinstance(value, MaskedStr)
        assert not _raw_in(repr(value))


def test_stored_entries_and_logout_outcome_are_masked(hf_home: Path) -> None:
    store = TokenStore(hf_home / "token")
    store.save("laptop", TOKEN, extra={"refresh_token": "hf_oauth_refresh_" + "r" * 30})
    entries = store.read_entries().unwrap()
    assert not _raw_in(repr(entries)) and "r" * 30 not in repr(entries)
    removed = store.remove().unwrap()
    assert removed.removed_tokens == (TOKEN,)
    assert not _raw_in(repr(removed.removed_tokens))
    assert not _raw_in(repr(removed)) and not _raw_in(str(removed.model_dump(mode="json")))


# -- a locals-capturing error reporter records no token --------------------------------------


def _failing_session() -> aiohttp.ClientSession:
    async def fail(*_: object) -> None:
        raise _HookFailed("a bug inside the request")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(fail)
    return aiohttp.ClientSession(trace_configs=[trace])


def _captured_locals(exc: BaseException) -> str:
    report = traceback.TracebackException.from_exception(exc, capture_locals=True)
    text = "".join(report.format())
    assert "a bug inside the request" in text
    return text


@pytest.mark.parametrize("source", ["HF_TOKEN", "file", "set_token", "secret argument"])
@pytest.mark.parametrize("cached", [False, True])
async def test_an_error_inside_whoami_captures_no_token_in_any_frame(
    source: str, cached: bool, hub: FakeHub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    elif source == "file":
        TokenStore(hf_home / "token").save("laptop", TOKEN)
    async with _failing_session() as session:
        cache = MemoryCache() if cached else None
        async with HubAuth(endpoint=hub.url, session=session, cache=cache) as auth:
            if source == "set_token":
                await auth.set_token(TOKEN)
            argument = SecretStr(TOKEN) if source == "secret argument" else None
            with pytest.raises(_HookFailed) as raised:
                await auth.whoami(argument)
    text = _captured_locals(raised.value)
    assert "whoami" in text and "_attempt" in text
    assert not _raw_in(text), "a frame's locals hold the raw token"
    assert mask_token(TOKEN) in text or "**********" in text


async def test_an_error_inside_login_captures_no_token_in_any_frame(
    hub: FakeHub, hf_home: Path
) -> None:
    async with _failing_session() as session, HubAuth(endpoint=hub.url, session=session) as auth:
        with pytest.raises(_HookFailed) as raised:
            await auth.login(SecretStr(TOKEN))
    text = _captured_locals(raised.value)
    assert not _raw_in(text), "a frame's locals hold the raw token"
