from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_auth._tokens import MAX_TOKEN_LENGTH, check_format, clean_token, mask_token, scrub

GOOD = "hf_" + "a1B2" * 8 + "cd"


@pytest.mark.parametrize(
    "token",
    [GOOD, "hf_oauth_" + "x" * 30, "hf_jwt_eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"],
)
def test_good_formats(token: str) -> None:
    assert check_format(token) is None


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("bad_token", "starts with 'hf_'"),
        ("api_org_" + "x" * 30, "organisation"),
        ("hf_abc", "too short"),
        ("hf_abc def ghijkl", "whitespace"),
        ("hf_abcdefgh\r\nX-Evil: 1", "control"),
        ("hf_abcdefgh\x00", "control"),
        ("hf_abcdéfghijkl", "non-ASCII"),
        ("hf_" + "a" * MAX_TOKEN_LENGTH, "too long"),
        ("", "whitespace"),
    ],
)
def test_bad_formats(token: str, reason: str) -> None:
    message = check_format(token)
    assert message is not None
    assert reason in message
    if len(token) > 8:
        assert token not in message


@pytest.mark.parametrize(
    ("token", "good"),
    [
        ("hf_" + "a" * 15, False),  # 18 characters: one short of the minimum
        ("hf_" + "a" * 16, True),
        ("hf_" + "a" * (MAX_TOKEN_LENGTH - 3), True),
        ("hf_" + "a" * (MAX_TOKEN_LENGTH - 2), False),
        ("hf_" + "a" * 16 + "\n", False),  # a trailing newline is not an end of string
        ("hf_" + "a" * 16 + "/", False),
        ("HF_" + "a" * 16, False),
    ],
)
def test_well_formed_fast_path_keeps_the_limits(token: str, good: bool) -> None:
    """The one-regex fast path accepts exactly what the separate checks accept."""
    assert (check_format(token) is None) is good


def test_clean_token() -> None:
    assert clean_token("  hf_abc\n") == "hf_abc"
    assert clean_token("\r\n ") is None
    assert clean_token(None) is None


def test_mask() -> None:
    assert mask_token(GOOD) == "hf_****" + GOOD[-4:]
    assert GOOD not in mask_token(GOOD)
    assert mask_token("hf_ab") == "hf_****"


def test_scrub_replaces_tokens() -> None:
    text = f"sent {GOOD} to the Hub"
    assert GOOD not in scrub(text)
    assert mask_token(GOOD) in scrub(text)


@given(st.text(max_size=5000))
def test_check_format_never_raises_and_blocks_injection(text: str) -> None:
    reason = check_format(text)
    if reason is None:
        assert text.startswith("hf_")
        assert not any(c in text for c in "\r\n\x00 \t")
        assert text.isascii() and len(text) <= MAX_TOKEN_LENGTH
