"""The public surface: literal lists of the public names, each ``__all__`` sorted and complete.

The expected sets were taken from main before the issue-20 layout change: a test here fails
when a public name appears, disappears or moves out of a public module by accident. Change a
list only on purpose (and say so in the changelog).
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
import subprocess
import sys
import typing
from types import ModuleType

import pytest

import hub_auth

PUBLIC_NAMES = {
    "hub_auth": {
        "CacheHealth",
        "CacheStats",
        "DeviceCode",
        "Err",
        "ErrorKind",
        "FineGrainedScope",
        "HealthReport",
        "HubAuth",
        "HubAuthError",
        "HubAuthSync",
        "LoginInfo",
        "LogoutInfo",
        "LoopRunningError",
        "MemoryCache",
        "Ok",
        "OrgInfo",
        "RedisCache",
        "Result",
        "StoredToken",
        "SwitchInfo",
        "TokenInfo",
        "TokenStore",
        "UserInfo",
        "WhoamiCache",
        "__version__",
        "is_err",
        "is_ok",
    },
    "hub_auth.sync": {
        "auth_headers",
        "complete_device_login",
        "configure",
        "default_client",
        "exchange_oidc_token",
        "get_token",
        "health",
        "list_tokens",
        "login",
        "logout",
        "set_token",
        "start_device_login",
        "switch_token",
        "validate_token",
        "whoami",
    },
    "hub_auth.fastapi": {
        "DEFAULT_RETRY_AFTER",
        "ROLE_ORDER",
        "HubBearer",
        "HubOAuth",
        "MemorySessionStore",
        "OAuthInfo",
        "OAuthOrgInfo",
        "OAuthUserInfo",
        "RedisSessionStore",
        "SessionStore",
    },
    "hub_auth.testing": {
        "FORBIDDEN_MESSAGE",
        "INVALID_CREDENTIALS_MESSAGE",
        "RATE_LIMITED_MESSAGE",
        "WHOAMI_PATH",
        "FakeHub",
        "FakeUser",
        "RecordedRequest",
        "make_token",
    },
    "hub_auth.pytest_plugin": {"fake_hub"},
}

NOT_EXPORTED = {
    "hub_auth.testing": {
        "FakeOAuth",  # reached as FakeHub.oauth, not constructed by users
        "main",  # `python -m hub_auth.testing`
    },
}
"""Public-looking classes and functions of a module that are deliberately not in ``__all__``."""

CLI_COMMANDS = {"demo", "list", "login", "logout", "switch", "token", "whoami"}

PLUGIN_FIXTURES = {"fake_hub"}


def isort_order(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else; each A-Z."""
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and len(name) > 1:
        return 0, name
    if name[0].isupper():
        return 1, name
    return 2, name


def module(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_all_lists_exactly_the_public_names(name: str) -> None:
    assert set(module(name).__all__) == PUBLIC_NAMES[name]


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_all_is_sorted_without_duplicates(name: str) -> None:
    names = list(module(name).__all__)
    assert names == sorted(set(names), key=isort_order)


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_name_in_all_resolves(name: str) -> None:
    mod = module(name)
    for public in mod.__all__:
        assert getattr(mod, public) is not None, f"{name}.{public}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what `import *` users get
    assert set(namespace) - {"__builtins__"} == set(mod.__all__)


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_all_is_complete(name: str) -> None:
    """Every public class or function defined in the module (or below it) is exported."""
    mod = module(name)
    defined_here = {
        public
        for public in dir(mod)
        if not public.startswith("_")
        and (inspect.isclass(value := getattr(mod, public)) or inspect.isfunction(value))
        and (value.__module__ == name or value.__module__.startswith(f"{name}."))
    }
    missing = defined_here - set(mod.__all__) - NOT_EXPORTED.get(name, set())
    assert not missing, f"{name}: add {sorted(missing)} to __all__ (or to NOT_EXPORTED)"


# Public names that keep their private module as __module__: string annotations (pydantic
# models, Ok/Err, StoredToken) resolve in that module's namespace only.
PRIVATE_MODULE_SHOWN = {
    "hub_auth": {
        "DeviceCode",
        "Err",
        "FineGrainedScope",
        "LoginInfo",
        "Ok",
        "OrgInfo",
        "StoredToken",
        "TokenInfo",
        "UserInfo",
    },
    "hub_auth.fastapi": {"OAuthInfo", "OAuthOrgInfo", "OAuthUserInfo"},
}


@pytest.mark.parametrize("name", sorted(PRIVATE_MODULE_SHOWN))
def test_public_classes_and_functions_report_the_public_path(name: str) -> None:
    """Defined in private modules, the names report the public one in reprs and tracebacks
    (issue 23), and their type hints still resolve."""
    mod = module(name)
    for public in mod.__all__:
        value = getattr(mod, public)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # __version__, the Result alias, constants
        if public in PRIVATE_MODULE_SHOWN[name]:
            parts = value.__module__.split(".")
            assert parts[0] == "hub_auth", (public, value.__module__)
            assert any(part.startswith("_") for part in parts[1:]), (public, value.__module__)
        else:
            assert value.__module__ == name, public
            if inspect.isclass(value) and not issubclass(value, enum.Enum):
                assert repr(value) == f"<class '{name}.{public}'>"
        typing.get_type_hints(value)  # NameError if an annotation no longer resolves


@pytest.mark.slow
def test_a_traceback_names_the_public_path() -> None:
    code = (
        "import asyncio\n"
        "from hub_auth.sync import whoami\n"
        "async def main():\n"
        "    whoami()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hub_auth.LoopRunningError: hub_auth.sync.whoami() blocks"), last


def test_the_cli_commands() -> None:
    from hub_auth.cli import main

    assert set(main.commands) == CLI_COMMANDS  # type: ignore[attr-defined]


def test_the_pytest_plugin_fixtures(request: pytest.FixtureRequest) -> None:
    plugin = module("hub_auth.pytest_plugin")
    fixtures = {
        name
        for name, value in vars(plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
        or hasattr(value, "_pytestfixturefunction")
    }
    assert fixtures == PLUGIN_FIXTURES
    # Installed, the pytest11 entry point registers it in every run, this one included.
    assert request.config.pluginmanager.get_plugin("hub_auth") is plugin


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="DoesNotExist"):
        hub_auth.DoesNotExist  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.slow
def test_import_is_light() -> None:
    """Importing the package must not load the network stack (the CLI depends on it)."""
    code = "import sys, hub_auth; print('aiohttp' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
