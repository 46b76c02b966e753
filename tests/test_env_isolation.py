"""conftest's isolation clears every environment variable hub_auth reads (the list cannot drift)."""

from __future__ import annotations

import ast
import functools
import os
import re
from pathlib import Path

import conftest

import hub_auth

PACKAGE = Path(hub_auth.__file__).parent
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [text for element in node.elts for text in _strings(element)]
    return []


def _mentions_environ(node: ast.AST) -> bool:
    for part in ast.walk(node):
        name = part.id if isinstance(part, ast.Name) else getattr(part, "attr", "")
        if "environ" in name or name == "getenv":
            return True
    return False


def variables_read(source: str) -> set[str]:
    """Names of the environment variables a module reads.

    Found as: a string argument of a call on an ``environ`` mapping (``environ.get("X")``,
    ``os.getenv("X")``), a call passing an ``environ`` and a name (``env_flag(environ, "X")``),
    ``environ["X"]``, and module constants whose name says ENV (``CLIENT_ID_ENV = "X"``,
    ``ENV_TOKEN_NAMES = ("X", "Y")``), which the calls then pass by name.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            if _mentions_environ(node.func) or any(_mentions_environ(a) for a in node.args):
                found.update(text for arg in node.args for text in _strings(arg))
        elif isinstance(node, ast.Subscript) and _mentions_environ(node.value):
            found.update(_strings(node.slice))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and "ENV" in t.id.split("_") for t in targets):
                found.update(_strings(node.value))
    return {name for name in found if _ENV_NAME.fullmatch(name)}


@functools.cache
def package_variables() -> frozenset[str]:
    return frozenset(
        name
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in variables_read(path.read_text(encoding="utf-8"))
    )


def test_the_scan_finds_variables_read_each_way() -> None:
    found = package_variables()
    assert {
        "HF_TOKEN",  # ENV_TOKEN_NAMES, read in a loop
        "HF_HUB_OFFLINE",  # env_flag(environ, ...)
        "HF_OIDC_RESOURCE",  # environ.get(OIDC_RESOURCE_ENV)
        "HF_DEVICE_CODE_OAUTH_CLIENT_ID",  # environ.get(CLIENT_ID_ENV)
        "OAUTH_CLIENT_ID",  # os.environ.get("...")
    } <= found
    assert variables_read('x = os.environ.get("NEW_SETTING")') == {"NEW_SETTING"}
    assert variables_read('x = os.environ["NEW_SETTING"]') == {"NEW_SETTING"}
    assert variables_read('x = os.getenv("NEW_SETTING")') == {"NEW_SETTING"}
    assert variables_read('NEW_ENV = "NEW_SETTING"') == {"NEW_SETTING"}
    assert variables_read('logger.info("NOT_A_SETTING")') == set()


def test_conftest_clears_every_variable_the_package_reads() -> None:
    missing = package_variables() - set(conftest.ENV_TO_CLEAR)
    assert not missing, f"add {sorted(missing)} to ENV_TO_CLEAR in tests/conftest.py"


def test_the_cleared_variables_are_unset_during_a_test(hf_home: Path) -> None:
    assert os.environ["HF_HOME"] == str(hf_home)
    still_set = [name for name in conftest.ENV_TO_CLEAR if name != "HF_HOME" and name in os.environ]
    assert still_set == []
