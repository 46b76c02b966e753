"""The generated sync facade (``python -m tools.gen_sync``) cannot drift from ``HubAuth``.

The checked-in files are what the generator writes now; ``--check`` fails on a drifted file;
every public coroutine and property of ``HubAuth`` has a twin with its signature and its
docstring, the examples rewritten for the sync caller; the output is clean for ruff and mypy.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hub_auth import HubAuth
from hub_auth import sync as hf_auth
from hub_auth._sync import HubAuthSync
from tools import gen_sync

ROOT = Path(__file__).resolve().parents[1]
GENERATED = [ROOT / "hub_auth" / gen_sync.FACADE, ROOT / "hub_auth" / gen_sync.MODULE]
COROUTINES = sorted(
    name
    for name, member in vars(HubAuth).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_") and name != "aclose"
)
PROPERTIES = sorted(
    name
    for name, member in vars(HubAuth).items()
    if isinstance(member, property) and not name.startswith("_") and name != "closed"
)  # aclose and closed: SyncFacade has its own close() and closed, written by hand


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def without_self(signature: inspect.Signature) -> inspect.Signature:
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def test_checked_in_files_equal_a_fresh_generation() -> None:
    generated = gen_sync.generate(gen_sync.SOURCE.read_text(encoding="utf-8"))
    assert sorted(generated) == sorted(path.name for path in GENERATED)
    for path in GENERATED:
        assert path.read_bytes().decode("utf-8") == generated[path.name], (
            f"{path.name} is out of date: run `python -m tools.gen_sync`"
        )


def test_check_fails_with_a_diff_when_a_file_drifted(tmp_path: Path) -> None:
    for path in GENERATED:
        shutil.copy(path, tmp_path / path.name)
    assert run("tools.gen_sync", "--check", "--out-dir", tmp_path).returncode == 0

    drifted = tmp_path / gen_sync.FACADE
    text = drifted.read_text(encoding="utf-8")
    drifted.write_text(text.replace("HubAuthSync.whoami", "HubAuthSync.who"), encoding="utf-8")
    result = run("tools.gen_sync", "--check", "--out-dir", tmp_path)

    assert result.returncode == 1
    assert '-        return self._run("HubAuthSync.who",' in result.stdout
    assert '+        return self._run("HubAuthSync.whoami",' in result.stdout
    assert "HubAuthSync.whoami" not in drifted.read_text(encoding="utf-8")  # nothing written


def test_every_coroutine_and_property_has_a_facade_twin_with_its_signature() -> None:
    assert "whoami" in COROUTINES and "endpoint" in PROPERTIES  # the lists are not empty
    public = {name for name in dir(HubAuthSync) if not name.startswith("_")}
    assert public == {*COROUTINES, *PROPERTIES, "close", "closed"}
    for name in COROUTINES:
        assert inspect.signature(getattr(HubAuthSync, name)) == inspect.signature(
            getattr(HubAuth, name)
        ), name
    for name in PROPERTIES:
        facade, source = getattr(HubAuthSync, name), getattr(HubAuth, name)
        assert isinstance(facade, property), name
        assert inspect.signature(facade.fget) == inspect.signature(source.fget), name

    # The configuration of HubAuth, but the aiohttp session (it belongs to one event loop).
    config = inspect.signature(HubAuth).parameters.copy()
    del config["session"]
    assert inspect.signature(HubAuthSync).parameters == config
    assert inspect.signature(hf_auth.configure).parameters == config


def test_every_coroutine_has_a_module_function_with_its_signature() -> None:
    assert hf_auth.__all__ == sorted([*COROUTINES, "configure", "default_client"])
    for name in COROUTINES:
        expected = without_self(inspect.signature(getattr(HubAuth, name)))
        assert inspect.signature(getattr(hf_auth, name)) == expected, name


def test_docstrings_are_copied_with_examples_written_for_the_sync_caller() -> None:
    def text_only(doc: str) -> str:
        """The docstring less what the rewrites may change: await, hf_ and parentheses."""
        return re.sub(r"await |hf_|[()]", "", doc)

    def doc(owner: object, name: str) -> str:
        return inspect.getdoc(getattr(owner, name)) or ""

    documented = [name for name in COROUTINES if "await auth." in doc(HubAuth, name)]
    assert documented, "no HubAuth docstring has an example left to check"
    for name in [*COROUTINES, *PROPERTIES]:
        source, facade = doc(HubAuth, name), doc(HubAuthSync, name)
        assert text_only(facade) == text_only(source), name
        assert "await " not in facade, name
        assert not re.search(r"\((hf_)?auth\.\w+\([^()]*\)\)", facade), name  # (x).unwrap()
        if name in COROUTINES:
            function = doc(hf_auth, name)
            assert text_only(function) == text_only(source), name
            assert "await " not in function, name
            assert not re.search(r"(?<![\w.])auth\.|\(hf_auth\.\w+\([^()]*\)\)", function), name
            for mentioned in re.findall(r"hf_auth\.(\w+)", function):
                assert hasattr(hf_auth, mentioned), f"{name} mentions hf_auth.{mentioned}"
    for name in documented:
        assert f"hf_auth.{name}(" in doc(hf_auth, name), name


def test_the_output_passes_ruff_and_mypy_strict(tmp_path: Path) -> None:
    for args in (["format", "--check"], ["check"]):
        result = run("ruff", *args, *GENERATED)
        assert result.returncode == 0, result.stdout + result.stderr
    # The one mypy run of this file: it takes a while.
    result = run("mypy", "--strict", "--cache-dir", tmp_path, *GENERATED)
    assert result.returncode == 0, result.stdout + result.stderr
