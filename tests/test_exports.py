"""The public surface: one sorted ``__all__`` whose every name resolves."""

from __future__ import annotations

import subprocess
import sys

import hub_auth


def test_all_is_sorted_and_resolves() -> None:
    assert hub_auth.__all__ == sorted(hub_auth.__all__)
    for name in hub_auth.__all__:
        assert getattr(hub_auth, name) is not None, name


def test_public_objects_live_in_private_modules_but_are_exported() -> None:
    for name in hub_auth.__all__:
        value = getattr(hub_auth, name)
        if not isinstance(value, type):
            continue  # __version__, the Result alias
        module = value.__module__
        assert module.startswith("hub_auth"), (name, module)


def test_issue_api_names_exist() -> None:
    from hub_auth import (  # noqa: F401
        Err,
        ErrorKind,
        HubAuth,
        HubAuthError,
        LoginInfo,
        Ok,
        OrgInfo,
        Result,
        TokenInfo,
        UserInfo,
    )


def test_unknown_attribute_raises() -> None:
    try:
        hub_auth.DoesNotExist  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    """Importing the package must not load the network stack (the CLI depends on it)."""
    code = "import sys, hub_auth; print('aiohttp' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
