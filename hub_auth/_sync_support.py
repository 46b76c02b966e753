"""What the generated ``HubAuthSync`` stands on: its event loop, the runner, the guard.

``hub_auth/_sync.py`` is generated (``python -m tools.gen_sync``) and only forwards: each
method is ``return self._run("HubAuthSync.<name>", HubAuth.<name>, ...)``. The behaviour lives
here, written by hand:

- One asyncio event loop per facade, made by the first call, and one long-lived ``HubAuth``
  on it. So the connection pool is kept between calls (keep-alive, one TLS handshake), and
  loop-bound objects (a ``redis.asyncio`` pool in ``RedisCache``, the cache's single-flight)
  work.
- Who runs the loop: the calling thread itself, with ``loop.run_until_complete``, when no other
  thread is running it (a lock decides). A script calling from one thread never pays a thread
  hop (handing a call to another thread and waiting for it cost 30-70 µs of wall time and more
  CPU than the whole call). A loop runs in one thread at a time, so a call that finds it
  taken is handed over (``asyncio.run_coroutine_threadsafe``) to whoever runs it; when that
  runner's own call is done and handed calls are left, the facade's loop thread (a daemon
  thread of its own, idle otherwise) runs the loop until they are done. A call made when
  they are done but the loop thread has not yet stopped the loop waits for it to, and runs
  in its own thread.
- The guard: a call from a thread whose event loop is running (``async def`` code) raises
  ``LoopRunningError`` at once, since blocking that loop would freeze its other tasks. The
  exception is a Jupyter/IPython kernel's main thread: the kernel runs a loop there, but a cell
  is the user's own code and waiting in it is what the user asked for; such a call is handed
  to the loop thread (this thread cannot run a second loop).
- ``close()`` and ``with``: refuse new calls, wait for those in flight, then the loop thread
  closes the ``HubAuth`` in the loop, cancels what is left, closes the loop and ends; it is
  joined. A facade that is never closed is closed when it is garbage-collected or at
  interpreter exit (``weakref.finalize``).
- Ctrl-C: the ``KeyboardInterrupt`` is raised at once in the waiting (or running) thread, and
  the call is cancelled; the loop thread runs the loop until the cancellation is done.
- ``os.fork()``: the child cannot use the parent's loop (its selector and sockets are shared
  with the parent) nor its thread (it does not exist there); the child's first call makes a
  loop, a thread and connections of its own.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from hub_auth._client import HubAuth
from hub_auth._errors import ErrorKind, HubAuthError

__all__ = ["DefaultClient", "LoopRunningError", "SyncFacade"]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound="SyncFacade")

# LoopRunningError is raised, never returned in an Err: it has a kind of its own.
_LOOP_RUNNING_KIND = ErrorKind.LOOP_RUNNING
# How long closing waits for calls cancelled but not yet finished (a Ctrl-C'd request).
_LEFTOVER_SECONDS = 5.0


class LoopRunningError(HubAuthError, RuntimeError):
    """A blocking hub_auth function was called from ``async`` code (a running event loop).

    Raised before anything is done (no request, no file touched). Blocking the loop would
    freeze every other task on it; ``await`` the ``HubAuth`` method instead. (A Jupyter cell
    is the exception: the facade works there.)
    """

    __module__ = "hub_auth"  # its public path, in tracebacks before hub_auth.LoopRunningError

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


def _may_run_here(function: str) -> bool:
    """Whether this thread may run the facade's loop itself (``False``: hand the call over).

    Raises ``LoopRunningError`` in ``async`` code, outside a notebook kernel.
    """
    # asyncio's own test, without the exception get_running_loop() raises in the common case.
    if asyncio.events._get_running_loop() is None:
        return True
    if _in_notebook_kernel():
        return False
    raise LoopRunningError(function)


class _SharedLoop:
    """An asyncio event loop, run by the calling thread when idle, else by its loop thread."""

    __slots__ = (
        "_closing",
        "_error",
        "_handed",
        "_let_go",
        "_lock",
        "_runner",
        "_wake",
        "loop",
        "thread",
    )

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the loop thread waits for work on it
        # Callers wait on it for the loop thread to let go of a loop it has no calls left on.
        self._let_go = threading.Condition(self._lock)
        # Who runs the loop: None (nobody), a calling thread's ident, or the loop thread.
        self._runner: int | None = None
        # Calls handed to whoever runs the loop, and tasks cancelled by a Ctrl-C, not done.
        self._handed = 0
        self._closing: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="hub_auth-sync-loop", daemon=True)
        self.thread.start()

    @property
    def portal(self) -> Self:
        """``call()`` under the name anyio's blocking portal gives it."""
        return self

    def call(self, function: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``function()`` on the loop and wait for its result (from any thread)."""
        return self.run(function(), here=asyncio.events._get_running_loop() is None)

    def run(self, coroutine: Coroutine[Any, Any, T], *, here: bool) -> T:
        """Run ``coroutine`` on the loop: in this thread if ``here`` and nobody else runs it."""
        with self._lock:
            # The loop thread still holds the loop when the calls handed to it are done (it
            # stops it next): wait for that, so a call made after every call returned runs in
            # its own thread, not handed to a loop about to stop (a thread hop for nothing).
            while here and self._winding_down():
                self._let_go.wait()
            mine = here and self._runner is None
            if mine:
                self._runner = threading.get_ident()
            else:
                self._handed += 1
                if self._runner is None:
                    self._runner = self.thread.ident
                    self._wake.notify()
        if mine:
            return self._run_here(coroutine)
        return self._hand_over(coroutine)

    def _winding_down(self) -> bool:
        """Whether the loop thread holds the loop with no call left on it (under the lock)."""
        return self._runner == self.thread.ident and not self._handed and self._closing is None

    def _run_here(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            task = self.loop.create_task(coroutine)
            try:
                return self.loop.run_until_complete(task)
            except BaseException:
                if not task.done():  # Ctrl-C: cancel the call; the loop thread finishes that
                    task.cancel()
                    with self._lock:
                        self._handed += 1
                    task.add_done_callback(self._handed_done)
                raise
        finally:
            with self._lock:
                # Calls handed to this thread while it ran the loop may be left: the loop
                # thread takes over.
                if self._handed:
                    self._runner = self.thread.ident
                    self._wake.notify()
                else:
                    self._runner = None

    def _hand_over(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except BaseException:
            coroutine.close()  # never scheduled: no "coroutine was never awaited"
            self._handed_done(None)
            raise
        future.add_done_callback(self._handed_done)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or any exception raised in this thread while waiting): cancel the call
            # in the loop too. A finished future ignores this.
            future.cancel()
            raise

    def _handed_done(self, _: object) -> None:
        with self._lock:
            self._handed -= 1
            if self._handed or self._runner != self.thread.ident:
                return
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop_when_idle)

    def _stop_when_idle(self) -> None:
        # In the loop; decided under the lock, so a stop never outlives the run it was for.
        with self._lock:
            if self._runner == self.thread.ident and not self._handed:
                self.loop.stop()

    def _serve(self) -> None:
        """The loop thread: run the loop while calls are handed to it, close it at the end."""
        me = threading.get_ident()
        while True:
            with self._lock:
                while self._runner != me and not (self._closing and self._runner is None):
                    self._wake.wait()
                closing = self._runner is None
                self._runner = me
            if closing:
                break
            self.loop.run_forever()
            with self._lock:
                if not self._handed:
                    self._runner = None
                    self._let_go.notify_all()
        try:
            assert self._closing is not None
            self.loop.run_until_complete(self._closing())
        except BaseException as exc:  # reported by stop(), in the thread that asked
            self._error = exc
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        loop = self.loop
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=_LEFTOVER_SECONDS))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def stop(self, auth: HubAuth) -> None:
        """Close ``auth`` in the loop, then close the loop and join its thread."""
        if threading.current_thread() is self.thread:
            return  # garbage-collected inside the loop thread itself: it cannot join itself
        with self._lock:
            self._closing = auth.aclose
            self._wake.notify()
            self._let_go.notify_all()  # a caller waiting for the loop no longer waits
        self.thread.join()
        if self._error is not None:
            raise self._error


class _ClosedError(RuntimeError):
    """A call refused because the facade is closed (before anything was done)."""


# Facades that may own a loop, so a forked child can forget the parent's.
_FACADES: weakref.WeakSet[SyncFacade] = weakref.WeakSet()
# The parent's loops as a forked child inherited them: kept referenced, because collecting one
# would warn of an unclosed loop, and closing it could disturb the parent's (shared) selector.
_LEFT_TO_THE_PARENT: list[_SharedLoop] = []


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
        self._loop: _SharedLoop | None = None
        self._finalizer: weakref.finalize[[HubAuth], SyncFacade] | None = None
        _FACADES.add(self)

    @property
    def closed(self) -> bool:
        """``True`` after ``close()`` (or the end of the ``with`` block)."""
        return self._closed

    def close(self) -> None:
        """Refuse new calls, wait for those in flight, then close the connections and the
        event loop and stop its thread. Idempotent."""
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
            raise _ClosedError(f"this {type(self).__name__} is closed; create a new one")

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
        here = _may_run_here(function)
        auth = self._auth
        with self._lock:
            self._check_open()
            loop = self._loop
            if loop is None:
                loop = self._loop = _SharedLoop()
                self._finalizer = weakref.finalize(self, loop.stop, auth)
            self._in_flight += 1
        try:
            return loop.run(method(auth, *args, **kwargs), here=here)
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def _forget_parent_loop(self) -> None:
        """In a child after ``os.fork()``: the loop, its thread and its connections are the
        parent's. Start afresh; the next call makes a loop (and connections) of its own."""
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


# What the default client of ``hub_auth.sync`` is made from: when one of these changes, the
# next call makes a new one (XDG_CACHE_HOME places HF_HOME when that is unset).
_FOLLOWED = ("HF_ENDPOINT", "HF_HOME", "HF_TOKEN_PATH", "XDG_CACHE_HOME")


def _followed_environment() -> tuple[str | None, ...]:
    """What ``HF_ENDPOINT`` ... are now: only compared with what they were."""
    return tuple(map(os.environ.get, _FOLLOWED))


class DefaultClient(Generic[F]):
    """The default facade of ``hub_auth.sync``'s functions.

    Made on first use from the environment, and made anew (the previous one closed, once the
    calls running on it are done) when ``HF_ENDPOINT``, ``HF_HOME``, ``HF_TOKEN_PATH`` or
    ``XDG_CACHE_HOME`` differ from what it was made with: a script or a test that points them
    elsewhere is followed, and a token never goes to the previous Hub. ``HF_TOKEN`` is read
    on every call anyway. A facade set with ``configure()`` is kept whatever the environment.
    """

    __slots__ = ("_current", "_lock", "_make")

    def __init__(self, make: Callable[[], F]) -> None:
        self._make = make
        self._lock = threading.Lock()
        # (the environment it was made from, or None when configured; the facade or None),
        # one tuple so that the lock-free read in get() sees a consistent pair.
        self._current: tuple[tuple[object, ...] | None, F | None] = (None, None)

    @property
    def current(self) -> F | None:
        """The facade in use, or ``None`` before the first call."""
        return self._current[1]

    def get(self) -> F:
        """The facade to use now (made or remade if needed)."""
        made_from, client = self._current
        if client is not None and (made_from is None or made_from == _followed_environment()):
            return client
        with self._lock:
            made_from, client = self._current
            environment = _followed_environment()
            if client is not None and (made_from is None or made_from == environment):
                return client
            fresh = self._make()  # a ValueError (a bad HF_ENDPOINT) keeps the previous one
            self._current = (environment, fresh)
        if client is not None:
            client.close()
        return fresh

    def configure(self, client: F) -> F:
        """Use ``client`` from now on, whatever the environment; close the previous one."""
        with self._lock:
            previous = self._current[1]
            self._current = (None, client)
        if previous is not None:
            previous.close()
        return client

    def close(self) -> None:
        """Close the facade in use; the next call makes one from the environment."""
        with self._lock:
            previous, self._current = self._current[1], (None, None)
        if previous is not None:
            previous.close()

    def run(
        self,
        function: str,
        method: Callable[Concatenate[HubAuth, P], Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``get()._run(...)``; again on the new facade if the environment changed between
        ``get()`` and the call (the facade it got was closed before the call started)."""
        while True:
            client = self.get()
            try:
                return client._run(function, method, *args, **kwargs)
            except _ClosedError:
                if self._current[1] is client:
                    raise
