"""``Ok`` / ``Err``: expected outcomes as values.

Every public operation of hub_auth returns ``Result[T]``: ``Ok(value)`` on success, or
``Err(HubAuthError)`` for a failure a caller should expect (the Hub said no, the network is
down, a file is unreadable). Programming mistakes still raise.

Three ways to look inside, all of which a type checker follows (``mypy --strict`` knows
``user`` is a ``UserInfo`` in each first branch)::

    result = await auth.whoami()

    match result:                       # 1. pattern matching
        case Ok(user):
            print(user.username)
        case Err(error):
            print(error.kind, error)

    if is_ok(result):                   # 2. the narrowing functions
        print(result.value.username)
    else:
        print(result.error.kind)

    if isinstance(result, Ok):          # 3. isinstance
        print(result.value.username)

The methods ``result.is_ok()`` / ``result.is_err()`` answer the same question at run time,
but a type checker cannot narrow ``result`` from a method call (PEP 742 narrows an argument,
never ``self``): after ``if result.is_ok():``, mypy still sees ``Ok | Err`` and rejects
``result.value``. Use ``is_ok(result)`` / ``is_err(result)`` when you want both.

Written here rather than taken from ``result`` (rustedpy), which is unmaintained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, Literal, NoReturn, TypeAlias, TypeVar

from typing_extensions import TypeIs

from hub_auth._errors import HubAuthError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
E_co = TypeVar("E_co", covariant=True)
E = TypeVar("E")
U = TypeVar("U")
D = TypeVar("D")

__all__ = ["Err", "Ok", "Result", "is_err", "is_ok"]


class Ok(Generic[T_co]):
    """A successful result carrying ``value``.

    Immutable and hashable when its value is; equal to another ``Ok`` with an equal value.
    ``Ok(value)`` in a ``match`` binds the value: ``case Ok(user): ...``.

    Attributes:
        value: What the operation produced (a ``UserInfo``, a ``SecretStr``, ...).
    """

    __slots__ = ("_value",)
    __match_args__: Final = ("value",)
    _value: T_co

    def __init__(self, value: T_co) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Ok is immutable")

    @property
    def value(self) -> T_co:
        """What the operation produced."""
        return self._value

    def is_ok(self) -> Literal[True]:
        """``True``. (To narrow a ``Result`` for a type checker, use ``is_ok(result)``.)"""
        return True

    def is_err(self) -> Literal[False]:
        """``False``. (To narrow a ``Result`` for a type checker, use ``is_err(result)``.)"""
        return False

    def unwrap(self) -> T_co:
        """Return the value."""
        return self._value

    def unwrap_or(self, default: object) -> T_co:
        """Return the value (the default is for ``Err``)."""
        return self._value

    def map(self, func: Callable[[T_co], U]) -> Ok[U]:
        """Apply ``func`` to the value and wrap the outcome in ``Ok``."""
        return Ok(func(self._value))

    def __repr__(self) -> str:
        return f"Ok({self._value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ok) and bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash((Ok, self._value))


class Err(Generic[E_co]):
    """A failed result carrying ``error`` (a :class:`~hub_auth.HubAuthError` in hub_auth).

    Immutable; equal to another ``Err`` with an equal error. ``Err(error)`` in a ``match``
    binds the error: ``case Err(error): print(error.kind)``. ``unwrap()`` raises it, for code
    that prefers exceptions.

    Attributes:
        error: Why the operation failed; in hub_auth a ``HubAuthError`` whose ``kind`` a
            program can branch on and whose message a person can read.
    """

    __slots__ = ("_error",)
    __match_args__: Final = ("error",)
    _error: E_co

    def __init__(self, error: E_co) -> None:
        object.__setattr__(self, "_error", error)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Err is immutable")

    @property
    def error(self) -> E_co:
        """Why the operation failed."""
        return self._error

    def is_ok(self) -> Literal[False]:
        """``False``. (To narrow a ``Result`` for a type checker, use ``is_ok(result)``.)"""
        return False

    def is_err(self) -> Literal[True]:
        """``True``. (To narrow a ``Result`` for a type checker, use ``is_err(result)``.)"""
        return True

    def unwrap(self) -> NoReturn:
        """Raise the error (or a ``RuntimeError`` wrapping it when it is not an exception)."""
        if isinstance(self._error, BaseException):
            # The same error may be raised again (a cached Err): start a fresh traceback each
            # time instead of growing one that keeps every caller's frames alive.
            raise self._error.with_traceback(None)
        raise RuntimeError(f"called unwrap() on {self!r}")

    def unwrap_or(self, default: D) -> D:
        """Return ``default``."""
        return default

    def map(self, func: Callable[[Any], object]) -> Err[E_co]:
        """Return this ``Err`` unchanged."""
        return self

    def __repr__(self) -> str:
        return f"Err({self._error!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Err) and bool(self._error == other._error)

    def __hash__(self) -> int:
        return hash((Err, self._error))


Result: TypeAlias = Ok[T] | Err[HubAuthError]
"""``Ok[T]`` or ``Err[HubAuthError]``: what every hub_auth operation returns.

``Result[UserInfo]`` is what ``whoami`` returns: ``Ok(UserInfo)`` or ``Err(HubAuthError)``.
Take it apart with ``match``, ``is_ok``/``is_err`` or ``isinstance`` (see the module
docstring), or call ``unwrap()`` to get the value or raise the error.
"""


def is_ok(result: Ok[T] | Err[E]) -> TypeIs[Ok[T]]:
    """Whether ``result`` is an ``Ok``; a type checker then knows ``result.value``'s type.

    >>> result = Ok(3)
    >>> if is_ok(result):
    ...     print(result.value + 1)
    4
    """
    return isinstance(result, Ok)


def is_err(result: Ok[T] | Err[E]) -> TypeIs[Err[E]]:
    """Whether ``result`` is an ``Err``; a type checker then knows ``result.error``'s type."""
    return isinstance(result, Err)
