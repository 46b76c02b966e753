"""What the generated ``HubAuthSync`` stands on: its event loop thread, the runner, the guard.

``hub_auth/_sync.py`` is generated (``python -m tools.gen_sync``) and only forwards: each
method is ``return self._run("HubAuthSync.<name>", HubAuth.<name>, ...)``. The behaviour lives
here, written by hand:

- One event loop per facade. The first call starts an anyio blocking portal
  (``anyio.from_thread.start_blocking_portal``: ``anyio.run`` in a daemon thread of its own)
  and every call of every thread runs its coroutine there, on one long-lived ``HubAuth``,
  handed over with ``asyncio.run_coroutine_threadsafe`` (half the CPU of ``portal.call``). So
  the connection pool is kept between calls (keep-alive, one TLS handshake), and loop-bound
  objects (a ``redis.asyncio`` pool in ``RedisCache``, the cache's single-flight) work.
- The guard: a call from a thread whose event loop is running (``async def`` code) raises
  ``LoopRunningError`` at once, since blocking that loop would freeze its other tasks. The
  exception is a Jupyter/IPython kernel's main thread: the kernel runs a loop there, but a cell
  is the user's own code and waiting in it is what the user asked for.
- ``close()`` and ``with``: refuse new calls, wait for those in flight, close the ``HubAuth``
  in its loop, stop the loop and join its thread. A facade that is never closed is closed when
  it is garbage-collected or at interpreter exit (``weakref.finalize``).
- Ctrl-C: the waiting thread raises ``KeyboardInterrupt`` at once and the call is cancelled in
  the loop thread.
- ``os.fork()``: the child cannot use the parent's loop thread (it does not exist there) nor its
  sockets; the child's first call starts a loop of its own with new connections.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import anyio.from_thread

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind, HubAuthError

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["LoopRunningError", "SyncFacade"]

P = ParamSpec("P")
T = TypeVar("T")

# LoopRunningError is raised, never returned in an Err: it has a kind of its own.
_LOOP_RUNNING_KIND = ErrorKind.LOOP_RUNNING


class LoopRunningError(HubAuthError, RuntimeError):
    """A blocking hub_auth function was called from ``async`` code (a running event loop).

    Raised before anything is done (no request, no file touched). Blocking the loop would
    freeze every other task on it; ``await`` the ``HubAuth`` method instead. (A Jupyter cell
    is the exception: the facade works there.)
    """

    def __init__(self, function: str) -> None:
        method = function.rpartition(".")[2]
        super().__init__(
            _LOOP_RUNNING_KIND,
            f"{function}() blocks, and it was called inside a running event loop (async def "
            f"code, e.g. an async FastAPI endpoint); use the async client there: "
            f"`async with HubAuth() as auth: await auth.{method}(...)`, or keep one HubAuth "
            "for the application (FastAPI: create it in the lifespan)",
        )
        self.function = function
        self.method = method

    def __reduce__(self) -> tuple[object, ...]:
        return (LoopRunningError, (self.function,))


def _in_notebook_kernel() -> bool:
    """Whether this is the main thread of a Jupyter/IPython kernel (which runs a loop there)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _check_may_block(function: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    if not _in_notebook_kernel():
        raise LoopRunningError(function)


class _LoopThread:
    """An anyio blocking portal: an event loop running in a daemon thread of its own."""

    __slots__ = ("_manager", "loop", "portal", "thread")

    def __init__(self) -> None:
        self._manager: AbstractContextManager[BlockingPortal] = (
            anyio.from_thread.start_blocking_portal(name="hub_auth-sync-loop")
        )
        self.portal = self._manager.__enter__()
        self.thread = self.portal.call(threading.current_thread)
        self.loop = self.portal.call(asyncio.get_running_loop)

    def stop(self, auth: HubAuth) -> None:
        """Close ``auth`` in the loop, then stop the loop and join its thread."""
        if threading.current_thread() is self.thread:
            return  # garbage-collected inside the loop thread itself: it cannot join itself
        try:
            self.portal.call(auth.aclose)
        finally:
            self._manager.__exit__(None, None, None)


# Facades that may own a loop thread, so a forked child can forget the parent's.
_FACADES: weakref.WeakSet[SyncFacade] = weakref.WeakSet()
# The parent's loop threads as a forked child inherited them: kept referenced, because
# collecting one would run the portal's exit, which waits for a thread the child does not have.
_LEFT_TO_THE_PARENT: list[_LoopThread] = []


def _after_fork_in_child() -> None:
    for facade in list(_FACADES):
        facade._forget_parent_loop()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SyncFacade:
    """The lifecycle and the runner of ``HubAuthSync``; the generated subclass forwards to them."""

    def __init__(self, auth: HubAuth) -> None:
        self._auth = auth
        self._closed = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._loop: _LoopThread | None = None
        self._finalizer: weakref.finalize[[HubAuth], SyncFacade] | None = None
        _FACADES.add(self)

    @property
    def closed(self) -> bool:
        """``True`` after ``close()`` (or the end of the ``with`` block)."""
        return self._closed

    def close(self) -> None:
        """Refuse new calls, wait for those in flight, then close the connections and stop the
        event loop thread. Idempotent."""
        with self._lock:
            self._closed = True
            while self._in_flight:
                self._idle.wait()
            finalizer, self._finalizer = self._finalizer, None
            self._loop = None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
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
        function: str,
        method: Callable[Concatenate[HubAuth, P], Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``method`` (a ``HubAuth`` coroutine function) on this facade's event loop.

        ``function`` is what the caller called (``HubAuthSync.whoami``, ``hf_auth.whoami``),
        for the message of ``LoopRunningError``.
        """
        _check_may_block(function)
        auth = self._auth
        with self._lock:
            self._check_open()
            if self._loop is None:
                self._loop = _LoopThread()
                self._finalizer = weakref.finalize(self, self._loop.stop, auth)
            loop = self._loop.loop
            self._in_flight += 1

        try:
            # The portal runs the loop; calls go straight to it: run_coroutine_threadsafe costs
            # half of BlockingPortal.call's CPU per call, and cancelling its future cancels
            # the task as well.
            coroutine = method(auth, *args, **kwargs)
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, loop)
            except BaseException:
                coroutine.close()  # never scheduled: no "coroutine was never awaited"
                raise
            try:
                return future.result()
            except BaseException:
                # Ctrl-C (or any exception raised in this thread while waiting): cancel the
                # call in the loop thread too. A finished future ignores this.
                future.cancel()
                raise
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def _forget_parent_loop(self) -> None:
        """In a child after ``os.fork()``: the loop thread and its connections are the
        parent's. Start afresh; the next call starts a loop (and connections) of its own."""
        if self._finalizer is not None:
            self._finalizer.detach()  # stopping the parent's loop from here would hang
        self._finalizer = None
        if self._loop is not None:
            _LEFT_TO_THE_PARENT.append(self._loop)
        self._loop = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._auth._forget_session_after_fork()
