"""HubAuthSync's own event loop: keep-alive, loop-bound caches, notebooks, Ctrl-C, fork, exit.

Each test drives a real facade against FakeHub (a server in a thread of the test process, or
the subprocess it starts), a real redis-server, a real Jupyter kernel, a real signal or a real
``os.fork()``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis_server as redis_helper

from hub_auth import HubAuth, HubAuthSync, MemoryCache, RedisCache
from hub_auth.testing import FakeHub

ROOT = Path(__file__).resolve().parents[1]


def _loop_thread(auth: HubAuthSync) -> threading.Thread:
    """The thread running ``auth``'s event loop (other tests' facades may have theirs)."""
    assert auth._loop is not None, "the facade has not started its loop"
    return auth._loop.thread


@pytest.fixture
def auth(fake_hub: FakeHub, hf_home: Path) -> Iterator[HubAuthSync]:
    with HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home) as client:
        yield client


def test_sequential_calls_reuse_one_connection(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")

    for _ in range(50):
        assert auth.whoami(token).unwrap().username == "ada"

    assert fake_hub.request_count == 50
    ports = {request.client_port for request in fake_hub.requests}
    assert len(ports) == 1 and None not in ports
    assert _loop_thread(auth).is_alive()


async def _running_thread() -> threading.Thread:
    return threading.current_thread()


def test_a_call_from_one_thread_runs_in_that_thread(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    # No thread hop for a script: the calling thread runs the facade's loop itself while no
    # other thread does; the loop thread is idle.
    token = fake_hub.add_token(name="ada")
    assert auth.whoami(token).is_ok()
    assert auth._loop is not None

    assert auth._loop.portal.call(_running_thread) is threading.current_thread()
    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(auth._loop.portal.call, _running_thread).result()
    assert worker not in {threading.current_thread(), _loop_thread(auth)}


async def _whoami_when_let(
    auth: HubAuth, token: str, started: threading.Event, go: threading.Event
) -> tuple[str, threading.Thread]:
    """``whoami(token)`` once ``go`` is set; the thread that ran the loop when it resumed."""
    started.set()
    await asyncio.to_thread(go.wait)
    running = threading.current_thread()
    return (await auth.whoami(token)).unwrap().username, running


def test_a_call_handed_over_finishes_after_the_thread_running_the_loop_returns(
    auth: HubAuthSync, fake_hub: FakeHub
) -> None:
    # The first thread runs the loop; the second finds it taken and hands its call over. The
    # first call ends first (the second waits for an event set after it), so the loop thread
    # runs the loop for the second. Events, not Hub delays: under load a delay is no order.
    first_token, second_token = fake_hub.add_token(name="ada"), fake_hub.add_token(name="bob")
    started = threading.Event(), threading.Event()
    go = threading.Event(), threading.Event()

    def call(token: str, index: int) -> tuple[str, threading.Thread, threading.Thread]:
        name, running = auth._run("t", _whoami_when_let, token, started[index], go[index])
        return name, running, threading.current_thread()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, first_token, 0)
        assert started[0].wait(timeout=30)
        second = pool.submit(call, second_token, 1)
        assert started[1].wait(timeout=30)  # handed over: the first thread runs it so far
        go[0].set()
        name, running, caller = first.result(timeout=30)
        assert (name, running) == ("ada", caller)  # ran in the calling thread, no hop
        assert not second.done()
        go[1].set()
        name, running, caller = second.result(timeout=30)
        assert (name, running) == ("bob", _loop_thread(auth))

    # The loop is idle again: this thread runs the next call itself.
    assert auth._loop is not None
    assert auth._loop.portal.call(_running_thread) is threading.current_thread()
    assert auth.whoami(first_token).is_ok()
    assert fake_hub.request_count == 3


def test_redis_cache_works_through_the_facade(
    fake_hub: FakeHub, hf_home: Path, redis_server: redis_helper.RedisServer
) -> None:
    # A redis.asyncio pool belongs to the loop it first ran on: with a loop per call, every
    # call after the first failed over to the Hub.
    token = fake_hub.add_token(name="ada")
    client = aioredis.Redis.from_url(redis_server.url)
    cache = RedisCache(client, secret=secrets.token_bytes(32))

    with HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home, cache=cache) as auth:
        names = [auth.whoami(token).unwrap().username for _ in range(5)]
        # The pool's connections live on the facade's loop: close them there.
        assert auth._loop is not None
        auth._loop.portal.call(client.aclose)

    assert names == ["ada"] * 5
    assert fake_hub.request_count == 1
    assert cache.available
    stats = cache.stats()
    assert (stats.hits, stats.hub_requests, stats.errors) == (4, 1, 0)


def test_fifty_threads_asking_about_one_new_token_make_one_request(
    fake_hub: FakeHub, hf_home: Path
) -> None:
    token = fake_hub.add_token(name="ada")
    fake_hub.default_delay = 0.2  # every thread arrives while the first request is out
    start = threading.Barrier(50)

    def ask(_: int) -> str:
        start.wait()
        return auth.whoami(token).unwrap().username

    with (
        HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home, cache=MemoryCache()) as auth,
        ThreadPoolExecutor(50) as pool,
    ):
        names = list(pool.map(ask, range(50)))

    assert names == ["ada"] * 50
    assert fake_hub.request_count == 1


def test_close_waits_for_calls_in_flight(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada")
    fake_hub.default_delay = 0.3
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(auth.whoami, token)
        while fake_hub.request_count == 0:
            time.sleep(0.01)
        thread = _loop_thread(auth)

        auth.close()

        assert pending.result(timeout=5).unwrap().username == "ada"
    assert auth.closed
    assert not thread.is_alive()


def test_a_facade_nobody_closed_is_closed_when_collected(fake_hub: FakeHub, hf_home: Path) -> None:
    token = fake_hub.add_token(name="ada")
    auth = HubAuthSync(endpoint=fake_hub.url, hf_home=hf_home)
    assert auth.whoami(token).is_ok()
    thread = _loop_thread(auth)
    assert thread.is_alive()

    del auth  # no cycle holds it: freed at once

    assert not thread.is_alive()


def _run_script(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_default_client_is_closed_at_interpreter_exit(fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")
    # Registered before hub_auth is imported, so it runs after hub_auth's exit hooks.
    result = _run_script(
        """
        import atexit, gc, threading, warnings
        warnings.simplefilter("error")

        def report():
            import aiohttp
            gc.collect()
            sessions = [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)]
            loops = [t for t in threading.enumerate() if t.name == "hub_auth-sync-loop"]
            still_open = sum(not s.closed for s in sessions)
            print("open sessions:", still_open, "loop threads:", len(loops))

        atexit.register(report)
        from hub_auth import sync as hf_auth

        print(hf_auth.whoami().unwrap().username)
        """,
        HF_ENDPOINT=fake_hub.url,
        HF_TOKEN=token,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ada", "open sessions: 0 loop threads: 0"]
    assert result.stderr == ""


def test_it_works_in_a_jupyter_kernel_cell(fake_hub: FakeHub, hf_home: Path) -> None:
    # The kernel runs an event loop in its main thread; a cell is the user's own code, and
    # huggingface_hub's blocking calls work there too.
    jupyter_client = pytest.importorskip("jupyter_client.manager")
    token = fake_hub.add_token(name="ada", orgs=["lab"])
    cell = f"""
        import asyncio
        from hub_auth import HubAuthSync, sync as hf_auth
        asyncio.get_running_loop()  # raises if this kernel ran no loop: the test would be moot
        hf_auth.configure(endpoint={fake_hub.url!r}, hf_home={str(hf_home)!r}, read_env=False)
        print("module:", hf_auth.whoami({token!r}).unwrap().username)
        with HubAuthSync(endpoint={fake_hub.url!r}, read_env=False) as auth:
            print("facade:", auth.whoami({token!r}).unwrap().organizations)
    """
    with warnings.catch_warnings():
        # jupyter_core's own deprecation notices are not ours to fail on.
        warnings.simplefilter("ignore", DeprecationWarning)
        manager, client = jupyter_client.start_new_kernel(kernel_name="python3")
    try:
        outputs: list[str] = []

        def collect(message: dict[str, object]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream" and isinstance(content, dict):
                outputs.append(str(content["text"]))
            elif message["msg_type"] == "error" and isinstance(content, dict):
                outputs.append(f"error: {content['ename']}: {content['evalue']}")

        reply = client.execute_interactive(textwrap.dedent(cell), timeout=60, output_hook=collect)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    assert reply["content"]["status"] == "ok", outputs
    assert "".join(outputs).splitlines() == ["module: ada", "facade: ('lab',)"]
    assert fake_hub.request_count == 2


def test_ctrl_c_interrupts_a_slow_call_and_cancels_it(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    token = fake_hub.add_token(name="ada")
    fake_hub.default_delay = 30.0
    main = threading.main_thread()
    assert threading.current_thread() is main

    def press_ctrl_c() -> None:
        while fake_hub.request_count == 0:
            time.sleep(0.01)
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        auth.whoami(token)
    presser.join()
    assert time.monotonic() - started < 5

    # The request was cancelled in the loop thread too: stopping the loop does not wait out
    # FakeHub's 30 s delay (it would wait for a task still running).
    thread = _loop_thread(auth)
    started = time.monotonic()
    auth.close()
    assert time.monotonic() - started < 5
    assert not thread.is_alive()


def test_after_ctrl_c_the_next_call_works(auth: HubAuthSync, fake_hub: FakeHub) -> None:
    # The interrupted call ran the loop in this thread; its cancellation is finished by the
    # loop thread, and the loop is free for the next call.
    token = fake_hub.add_token(name="ada")
    fake_hub.delay_next(30.0)
    main = threading.main_thread()
    assert threading.current_thread() is main

    def press_ctrl_c() -> None:
        while fake_hub.request_count == 0:
            time.sleep(0.01)
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        auth.whoami(token)
    presser.join()

    started = time.monotonic()
    assert auth.whoami(token).unwrap().username == "ada"
    assert time.monotonic() - started < 5
    assert fake_hub.request_count == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_gets_a_loop_and_connection_of_its_own(
    auth: HubAuthSync, fake_hub: FakeHub
) -> None:
    token = fake_hub.add_token(name="ada")
    assert auth.whoami(token).is_ok()  # the parent's loop thread and connection exist
    read_end, write_end = os.pipe()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork" (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        status = 1
        try:
            name = auth.whoami(token).unwrap().username
            alive = sum(t.name == "hub_auth-sync-loop" for t in threading.enumerate())
            os.write(write_end, f"{name} {alive}".encode())
            auth.close()
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child_said = pipe.read()

    assert os.waitstatus_to_exitcode(status) == 0
    assert child_said == "ada 1"
    assert auth.whoami(token).is_ok()  # the parent still works, on its own connection
    parent, child, parent_again = (request.client_port for request in fake_hub.requests)
    assert parent == parent_again != child
