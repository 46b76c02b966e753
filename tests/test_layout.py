"""The package's layout rules (docs/architecture.md): no import cycles, lower layers never import
higher ones, the emulator is never imported by the library, and the generator is not shipped.

Imports are read from the source with ``ast`` (nothing is imported), including imports inside
functions and under ``TYPE_CHECKING``: a cycle there is still two modules that need each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hub_auth"

# The modules of the emulator, the CLI and the pytest plugin sit on top: the library below them
# never imports them (the CLI's demo, which runs FakeHub, is part of the CLI).
TOP = ("hub_auth.testing", "hub_auth.cli", "hub_auth.pytest_plugin")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The hub_auth modules ``name`` imports, anywhere in its code (not in strings)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from hub_auth._login import git` imports the submodule hub_auth._login.git.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # The deepest known module the import names (a name imported from a module counts
            # as that module).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "hub_auth":
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "hub_auth" / "_a" / "b.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import hub_auth._c\n"
        "from hub_auth._login import git\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    from hub_auth._d import D\n"
        "def f():\n    from hub_auth.testing import FakeHub\n"
        "TEXT = 'from hub_auth._e import E'\n",
        encoding="utf-8",
    )
    known = {"hub_auth._c", "hub_auth._login.git", "hub_auth._a.sibling", "hub_auth._d"}
    known |= {"hub_auth.testing", "hub_auth._e", "hub_auth._login"}
    assert _imports("hub_auth._a.b", source, known) == {
        "hub_auth._c",
        "hub_auth._login",
        "hub_auth._login.git",
        "hub_auth._a.sibling",
        "hub_auth._d",
        "hub_auth.testing",
    }


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("top", TOP)
def test_the_library_never_imports_what_sits_on_top_of_it(top: str) -> None:
    offenders = {
        name: sorted(target for target in targets if target.startswith(top))
        for name, targets in _graph().items()
        if not name.startswith(TOP)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_facade_generator_is_not_in_the_package() -> None:
    assert not [path.name for path in PACKAGE.rglob("*codegen*")]
    assert not [path.name for path in PACKAGE.rglob("gen_sync*")]
    assert (PACKAGE.parent / "tools" / "gen_sync.py").is_file()
