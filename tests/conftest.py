"""Shared fixtures and the ``slow`` marker.

Every test runs with a private HF_HOME and HOME and without any environment variable that
hub_auth reads (``test_env_isolation.py`` keeps the list complete). Shared fixtures: ``hub`` (a
started FakeHub, without users: a module overrides it to add its own), ``store``, ``auth``,
``redis_server`` (one ``redis-server`` per session, emptied for each test) and ``clock``.

``pytest -m "not slow"`` leaves out the tests that start processes, browsers or servers: every
test of the modules in ``SLOW_MODULES``, every test using a fixture in ``SLOW_FIXTURES``, and
tests marked ``@pytest.mark.slow``. A test that starts a process (other than git) without
the marker fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from manual_clock import ManualClock
from redis_server import redis_server, redis_session

from hub_auth import HubAuth
from hub_auth._login.store import TokenStore
from hub_auth.testing import FakeHub

# secret_guard fails any test whose logs or output carry a token (tests/secret_guard.py).
pytest_plugins = ["pytester", "tests.secret_guard"]

__all__ = ["ENV_TO_CLEAR", "redis_server", "redis_session"]

ENV_TO_CLEAR = (
    # huggingface_hub's variables: token, paths, endpoint, offline mode
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    # device login and token refresh
    "HF_DEVICE_CODE_OAUTH_CLIENT_ID",
    # OIDC token exchange, GitHub Actions' id token included
    "HF_OIDC_RESOURCE",
    "HF_OIDC_ID_TOKEN",
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    # HubOAuth (the variables a Hugging Face Space sets)
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_SCOPES",
    "OPENID_PROVIDER_URL",
    "SPACE_HOST",
    # the shared cache secret of the docs' RedisCache examples
    "HUB_AUTH_CACHE_SECRET",
    # terminal output of the CLI
    "NO_COLOR",
    "FORCE_COLOR",
)
"""Unset for every test; ``test_env_isolation.py`` fails when hub_auth reads one not listed."""

SLOW_MODULES = frozenset(
    {
        "test_cli_pty",  # pseudo-terminals (pexpect)
        "test_cli_security",  # the real hub-auth process
        "test_device_cli",
        "test_device_browser",  # chromium
        "test_signin_browser",  # chromium and uvicorn
        "test_scale_out",  # replica processes and redis-server
        "test_redis_cluster",  # a 6-node redis-server cluster and replica processes
        "test_docs_code",  # runs the docs' code blocks in subprocesses
        "test_examples",
        "test_readme",
        "test_interop_cli",  # huggingface_hub's CLI in subprocesses
        "test_refresh_interop",
        "test_sync_env",  # a script in a subprocess
        "test_fakehub_cli",
        "test_signin_shell",  # the shell FakeHub and the example in subprocesses
        "test_fakehub_tls",
        "test_codegen",
        "test_pytest_plugin",
        "test_fuzz",  # hypothesis: hundreds of examples per test
        "test_mcp",  # real uvicorn and the mcp client
        "test_mcp_oauth",
        "test_mcp_example",
        "test_mcp_bench",
        "test_readme_figures",  # collects the suite in a subprocess
        "test_telemetry_process",  # scripts with and without OpenTelemetry
        "test_startup_imports",  # a fresh interpreter per case
    }
)
"""Modules whose every test starts a process, a browser or a server."""

SLOW_TESTS = frozenset(
    {
        "test_benchmarks::test_smoke_run_measures_every_summary_figure",
        "test_benchmarks::test_the_chart_is_redrawn_from_the_run",  # matplotlib runs fc-list
        "test_cli::test_importing_the_cli_is_light",
        "test_cli::test_local_commands_do_not_import_aiohttp",
        "test_cli::test_real_process_never_shows_the_token_except_in_token",
        "test_cli::test_token_does_not_import_pydantic",
        "test_cli::test_without_click_the_command_says_which_extra_to_install",
        "test_cli_output::test_usage_errors_in_a_real_process_mask_a_token",
        "test_device_login::test_the_stored_login_reads_back_with_huggingface_hub",
        "test_endpoint_config::test_module_default_client_says_where_the_endpoint_came_from",
        "test_fakehub::test_command_line_entry_point",
        "test_fastapi::test_example_under_uvicorn_on_loopback",
        "test_login_files::test_shared_modules_load_neither_aiohttp_nor_pydantic",
        "test_network_errors::test_retries_are_logged_at_debug_on_the_hub_auth_logger",
        "test_network_errors::test_retries_print_nothing_without_logging_configured",
        "test_oidc::test_same_requests_as_huggingface_hub_on_github",
        "test_oidc::test_same_requests_as_huggingface_hub_with_an_id_token",
        "test_store::test_disk_full_keeps_the_old_file",
        "test_store::test_files_are_byte_identical_to_huggingface_hub",
        "test_store::test_huggingface_hub_holds_the_same_lock",
        "test_store::test_huggingface_hub_logout_of_our_entry",
        "test_store::test_huggingface_hub_reads_what_we_write",
        "test_store::test_importing_the_store_stays_light",
        "test_store::test_killed_writer_leaves_the_old_files_and_no_stale_lock",
        "test_store::test_our_save_keeps_huggingface_hub_oauth_fields",
        "test_store::test_processes_saving_at_once_lose_nothing",
        "test_store::test_we_read_what_huggingface_hub_writes",
        "test_sync::test_example_script_runs",
        "test_sync_loop::test_it_works_in_a_jupyter_kernel_cell",
        "test_sync_loop::test_the_default_client_is_closed_at_interpreter_exit",
        # They wait on the real clock (asyncio.sleep of 1 s and more) until an injected clock
        # governs the expiry they test; take them out of this list then.
        "test_fastapi_oauth_sessions::test_failing_refresh_keeps_a_valid_token_but_never_serves_an_expired_one",
        "test_fastapi_oauth_sessions::test_sessions_end_after_their_lifetime_despite_refreshes",
        "test_oidc::test_a_given_id_token_is_used_for_the_whole_lifetime",
        "test_oidc::test_github_tokens_are_exchanged_again_five_minutes_before_expiry",
        "test_refresh::test_server_error_goes_on_with_the_old_token_and_retries_later",
    }
)
"""Tests (``module::function``) of other modules that start a Python process, a CLI or uvicorn,
or wait on the real clock."""

SLOW_FIXTURES = frozenset({"redis_server", "redis_session"})
"""Fixtures that make a test slow (a real ``redis-server``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules: dict[str, object] = {}
    for item in items:
        module = item.path.stem
        if isinstance(item, pytest.Function):
            modules[module] = item.module
        if (
            module in SLOW_MODULES
            or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS
            or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.slow)
    stale = [
        name
        for name in sorted(SLOW_TESTS)
        if (module := name.partition("::")[0]) in modules
        and not hasattr(modules[module], name.partition("::")[2])
    ]
    if stale:
        raise pytest.UsageError(f"SLOW_TESTS in tests/conftest.py names no test: {stale}")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HF_HOME and HOME at temporary folders so no test touches real login files."""
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    hf_home = tmp_path / "hf_home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    yield hf_home


FAST_PROGRAMS = frozenset({"git"})
"""Programs a fast test may run: hub_auth's logout runs ``git credential`` (milliseconds)."""


def _program(args: Any) -> str:
    """The program's name in ``Popen``'s ``args`` (a sequence, a path, or a command line)."""
    if isinstance(args, str | bytes):
        argv: list[Any] = os.fsdecode(args).split()
    elif isinstance(args, os.PathLike):
        argv = [args]
    else:
        argv = list(args)
    return Path(os.fsdecode(argv[0])).name if argv else ""


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test not marked ``slow`` that starts a process fails, so the marker cannot drift.

    The process still starts (the test runs as it would); the test fails afterwards. Only the
    programs in ``FAST_PROGRAMS`` are allowed.
    """
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    started: list[str] = []
    popen_init = subprocess.Popen.__init__

    def watched(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        if (program := _program(args)) not in FAST_PROGRAMS:
            started.append(program)
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", watched)
    yield
    if started:
        pytest.fail(
            f"{request.node.nodeid} runs {sorted(set(started))} but is not marked slow: add "
            "@pytest.mark.slow, or list its module in SLOW_MODULES in tests/conftest.py",
            pytrace=False,
        )


@pytest.fixture
def hf_home(isolated_env: Path) -> Path:
    """The temporary HF_HOME of this test."""
    return isolated_env


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    """A FakeHub started on the test's event loop, without users.

    A module that needs users overrides it and asks for this one::

        @pytest.fixture
        def hub(hub: FakeHub) -> FakeHub:
            hub.add_token(TOKEN, FakeUser(name="ada-lovelace"))
            return hub

    Sync tests (CliRunner, the sync facade) use the plugin's threaded ``fake_hub`` instead.
    """
    async with FakeHub() as fake:
        yield fake


@pytest.fixture
def store(hf_home: Path) -> TokenStore:
    """The token store at ``$HF_HOME/token``, empty."""
    return TokenStore(hf_home / "token")


@pytest.fixture
async def auth(hub: FakeHub, hf_home: Path) -> AsyncIterator[HubAuth]:
    """A ``HubAuth`` pointed at ``hub`` and the test's HF_HOME."""
    async with HubAuth(endpoint=hub.url, hf_home=hf_home) as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    """A clock at 1000.0 s that moves only when the test calls ``clock.advance(seconds)``."""
    return ManualClock()


@pytest.fixture
async def close_oauth_clients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Close the own HTTP client of every ``HubOAuth`` the test made: the app's shutdown would,
    but httpx's ASGITransport never sends it (an unclosed aiohttp session is a warning, and
    warnings are errors)."""
    from hub_auth.fastapi import HubOAuth

    made: list[HubOAuth] = []
    construct = HubOAuth.__init__

    def recording(self: HubOAuth, *args: object, **kwargs: object) -> None:
        construct(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(HubOAuth, "__init__", recording)
    yield
    for oauth in made:
        await oauth.aclose()
