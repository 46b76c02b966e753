"""Checked by ``mypy --strict`` in tests/test_result_typing.py (never imported by pytest).

Every line here must type-check: the narrowing the docs promise for ``Result``.
"""

from __future__ import annotations

from typing import assert_type

from hub_auth import Err, HubAuthError, Ok, Result, UserInfo, is_err, is_ok


def narrows_with_is_ok(result: Result[UserInfo]) -> str:
    if is_ok(result):
        assert_type(result, Ok[UserInfo])
        return result.value.username
    assert_type(result, Err[HubAuthError])
    return result.error.kind.value


def narrows_with_is_err(result: Result[UserInfo]) -> str:
    if is_err(result):
        assert_type(result.error, HubAuthError)
        return result.error.message
    return result.value.username


def narrows_with_match(result: Result[UserInfo]) -> str:
    match result:
        case Ok(user):
            assert_type(user, UserInfo)
            return user.username
        case Err(error):
            assert_type(error, HubAuthError)
            return str(error)


def narrows_with_isinstance(result: Result[UserInfo]) -> str | None:
    if isinstance(result, Ok):
        return result.value.username
    return None
