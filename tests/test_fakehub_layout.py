"""The layout of ``hub_auth.testing``: one-way imports, one public surface, public paths."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import hub_auth.testing

PACKAGE = Path(hub_auth.testing.__file__).parent
# Lowest first: a module may import only those before it (never the package itself).
ORDER = ("_users", "_pages", "_openid", "_oauth", "_hub", "_cli", "__main__")
PUBLIC_CLASSES = (hub_auth.testing.FakeHub, hub_auth.testing.FakeUser)


def _testing_imports(module: str) -> set[str]:
    """Every ``hub_auth.testing`` module ``module`` imports, wherever the import statement is
    (top level, inside a function, under ``TYPE_CHECKING``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == "hub_auth.testing" or name.startswith("hub_auth.testing."):
                found.add(name.removeprefix("hub_auth.testing").lstrip(".") or "<package>")
    return found


def test_every_module_of_the_package_has_a_place_in_the_order() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER)


def test_a_lower_module_never_imports_a_higher_one_nor_the_package() -> None:
    for position, module in enumerate(ORDER):
        imported = _testing_imports(module)
        assert imported <= set(ORDER[:position]), (module, sorted(imported))


def test_names_importable_outside_all_stay_so() -> None:
    """``__all__`` itself is pinned by tests/test_exports.py; these two were importable before
    the split without being in it."""
    assert callable(hub_auth.testing.main)
    assert hub_auth.testing.FakeOAuth is type(hub_auth.testing.FakeHub().oauth)


def test_public_classes_report_the_public_path_and_their_hints_still_resolve() -> None:
    for public in (*PUBLIC_CLASSES, hub_auth.testing.RecordedRequest):
        assert public.__module__ == "hub_auth.testing"
        assert repr(public) == f"<class 'hub_auth.testing.{public.__name__}'>"
        typing.get_type_hints(public)  # raises NameError if the annotations cannot be resolved
    assert hub_auth.testing.make_token.__module__ == "hub_auth.testing"
    assert typing.get_type_hints(hub_auth.testing.FakeHub.add_token)["user"] == (
        hub_auth.testing.FakeUser | None
    )
