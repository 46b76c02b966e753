"""What the generated ``HubAuthSync`` stands on: its lifecycle, the per-call runner, the guard.

``hub_auth/_sync.py`` is generated (``python -m hub_auth._codegen``) and only forwards: each
method is ``return self._run(HubAuth.<name>, ...)``. The behaviour lives here, written by hand:

- ``_run`` refuses to start when an event loop is already running in this thread (blocking it
  would freeze every other task, and ``anyio.run`` cannot nest), then runs the coroutine in a
  new event loop on a *fork* of the wrapped ``HubAuth``: same settings, in-memory token, store
  and cache, but a network session of its own, closed before the loop ends. An aiohttp session
  belongs to one event loop, and each call has a new loop, possibly in several threads at once.
- ``close()`` and the ``with`` statement: a closed facade refuses calls, like ``HubAuth``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import anyio

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind, HubAuthError

__all__ = ["LoopRunningError", "SyncFacade"]

P = ParamSpec("P")
T = TypeVar("T")

# LoopRunningError is raised, never returned in an Err: it has a kind of its own.
_LOOP_RUNNING_KIND = ErrorKind.LOOP_RUNNING


class LoopRunningError(HubAuthError, RuntimeError):
    """A ``HubAuthSync`` method was called while an event loop runs in the same thread.

    Raised before anything is done (no request, no file touched). Inside ``async def`` code
    (an async FastAPI endpoint, a Jupyter cell) ``await`` the ``HubAuth`` method instead.
    """

    def __init__(self, method: str) -> None:
        super().__init__(
            _LOOP_RUNNING_KIND,
            f"HubAuthSync.{method}() cannot run inside a running event loop (an async FastAPI "
            f"endpoint, a Jupyter cell); use `await HubAuth().{method}(...)` instead",
        )
        self.method = method

    def __reduce__(self) -> tuple[object, ...]:
        return (LoopRunningError, (self.method,))


def _refuse_running_loop(method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise LoopRunningError(method)


class SyncFacade:
    """The lifecycle and the runner of ``HubAuthSync``; the generated subclass forwards to them."""

    def __init__(self, auth: HubAuth) -> None:
        self._auth = auth
        self._closed = False

    @property
    def closed(self) -> bool:
        """``True`` after ``close()`` (or the end of the ``with`` block)."""
        return self._closed

    def close(self) -> None:
        """Refuse further calls. Idempotent.

        There is no network session to close: each call closes its own before returning.
        """
        self._closed = True

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} endpoint={self._auth.endpoint!r} "
            f"token_path={str(self._auth.token_path)!r} {state}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")

    def _run(
        self,
        method: Callable[Concatenate[HubAuth, P], Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``method`` (a ``HubAuth`` coroutine function) to completion in a new event loop."""
        _refuse_running_loop(method.__name__)
        self._check_open()
        fork = self._auth._fork()

        async def call() -> T:
            try:
                return await method(fork, *args, **kwargs)
            finally:
                await fork._close_session()

        return anyio.run(call)
