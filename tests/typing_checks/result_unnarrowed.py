"""Checked by ``mypy --strict`` in tests/test_result_typing.py: must FAIL on the marked line.

Without narrowing, ``result.value`` is an error (an ``Err`` has no ``value``): the check above
is only worth something if mypy would reject the code it did not narrow.
"""

from __future__ import annotations

from hub_auth import Result, UserInfo


def not_narrowed(result: Result[UserInfo]) -> str:
    return result.value.username  # expected: union-attr
