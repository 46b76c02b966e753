from __future__ import annotations

import pickle

import pytest

from hub_auth import Err, ErrorKind, HubAuthError, Ok, Result


def _parse(text: str) -> Result[int]:
    if text.isdigit():
        return Ok(int(text))
    return Err(HubAuthError(ErrorKind.BAD_RESPONSE, "not a number"))


def test_ok_accessors() -> None:
    ok = Ok(3)
    assert ok.value == 3
    assert ok.is_ok() and not ok.is_err()
    assert ok.unwrap() == 3
    assert ok.unwrap_or(7) == 3
    assert ok.map(lambda v: v * 2) == Ok(6)
    assert repr(ok) == "Ok(3)"


def test_err_accessors() -> None:
    error = HubAuthError(ErrorKind.NO_TOKEN, "none")
    err = Err(error)
    assert err.error is error
    assert err.is_err() and not err.is_ok()
    assert err.unwrap_or(7) == 7
    assert err.map(lambda v: v * 2) is err
    with pytest.raises(HubAuthError) as info:
        err.unwrap()
    assert info.value is error


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        Ok(1).value = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Err(HubAuthError(ErrorKind.STORAGE, "x"))._error = 1  # type: ignore[misc]


def test_match_narrows() -> None:
    seen = []
    for text in ("12", "x"):
        match _parse(text):
            case Ok(value):
                seen.append(value + 1)
            case Err(error):
                seen.append(error.kind)
    assert seen == [13, ErrorKind.BAD_RESPONSE]


def test_equality_and_hash() -> None:
    assert Ok(1) == Ok(1)
    assert Ok(1) != Ok(2)
    assert Ok(1) != Err(1)
    assert hash(Ok("a")) == hash(Ok("a"))


def test_error_fields_str_and_pickle() -> None:
    error = HubAuthError(
        ErrorKind.RATE_LIMITED, "slow down", status=429, request_id="r-1", retry_after=30.0
    )
    assert error.kind == "rate_limited"
    assert str(error) == "slow down (status 429, request id r-1, retry after 30s)"
    assert "rate_limited" in repr(error)
    clone = pickle.loads(pickle.dumps(error))
    assert clone == error
    assert isinstance(error, Exception)


def test_error_kind_values() -> None:
    assert {k.value for k in ErrorKind} == {
        "no_token",
        "invalid_token",
        "unauthorized",
        "forbidden",
        "rate_limited",
        "network",
        "timeout",
        "server_error",
        "bad_response",
        "offline",
        "not_found",
        "storage",
        "access_denied",
        "expired",
        "loop_running",
    }


def test_equal_errors_hash_alike() -> None:
    a = HubAuthError(ErrorKind.NOT_FOUND, "x", status=404)
    b = HubAuthError(ErrorKind.NOT_FOUND, "x", status=404)
    assert len({Err(a), Err(b)}) == 1
    assert len({a, b}) == 1
