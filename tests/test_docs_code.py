"""The documentation site's code runs as written, and every public name has a docstring.

Every ```python block under docs/ runs in a fresh interpreter (tests/markdown_blocks.py, as
the README's) against a FakeHub started here: ``HF_ENDPOINT`` points at it, ``HF_HOME`` is a
temporary folder, ``HF_TOKEN`` belongs to ``readme-user`` (in ``my-org``),
``HF_OIDC_ID_TOKEN`` is an id token the exchange accepts for ``my-org/my-model``, and device
logins are approved as they appear. Each block is listed in ``EXPECTED`` under its page with
what it prints; a block that is a fragment on purpose is preceded by
``<!-- not run: reason -->``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import os
import re
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_auth.testing import FakeHub
from tests.markdown_blocks import PYTHON_LANGUAGES, Block, Expected, python_blocks, run_block

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = (
    "hub_auth",
    "hub_auth.sync",
    "hub_auth.testing",
    "hub_auth.fastapi",
    "hub_auth.pytest_plugin",
)

_FASTAPI_DRIVER = textwrap.dedent(
    """
    import os

    from fastapi.testclient import TestClient

    from docs_block import app

    def bearer(name):
        return {"authorization": "Bearer " + os.environ[name]}

    with TestClient(app) as client:
        member = client.get("/me", headers=bearer("MEMBER_TOKEN"))
        print(member.status_code, member.json())
        print(client.get("/me", headers=bearer("OUTSIDER_TOKEN")).status_code)
        print(client.get("/me").status_code)
        anonymous = client.get("/hello").json()
        print(anonymous, client.get("/hello", headers=bearer("MEMBER_TOKEN")).json())
    """
)

# Runs the block as a test file with pytest, in a child process, and prints its outcome.
_PYTEST_DRIVER = textwrap.dedent(
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "docs_block.py"],
        capture_output=True,
        text=True,
    )
    print(done.returncode, done.stdout.strip().splitlines()[-1].split(" in ")[0])
    """
)

# page -> {a line only that block has: what it must print}
EXPECTED: dict[str, dict[str, Expected]] = {
    "index.md": {"async with HubAuth() as auth:  # token:": Expected("readme-user ('my-org',)\n")},
    "getting-started.md": {
        'print(f"{user.username} is in': Expected("readme-user is in my-org\n"),
        "checked = await auth.validate_token(": Expected("True 401\nreadme-user\n"),
        "info = (await auth.login(": Expected(
            "logged in as readme-user under readme-user-token\n"
            "readme-user-token hf_ active\n"
            "readme-user-token\n"
            "removed ('readme-user-token',)\n"
        ),
        "with HubAuthSync() as auth:": Expected("readme-user ('my-org',)\n"),
        "user = hf_auth.whoami().unwrap()": Expected("readme-user True\n"),
    },
    "services.md": {
        "app = FastAPI(lifespan=lifespan)": Expected(
            "200 {'username': 'readme-user', 'orgs': ['my-org']}\n403\n401\n"
            "hello stranger hello readme-user\n",
            driver=_FASTAPI_DRIVER,
        ),
        "users = await asyncio.gather(": Expected("100 answers, 1 request to the Hub\n"),
        "client = redis.Redis.from_url(": Expected(
            "readme-user\nreadme-user\nreadme-user\nHub requests: 1\n"
        ),
    },
    "login-refresh-ci.md": {
        "waiting = asyncio.create_task(": Expected(
            r"Open http://127\.0\.0\.1:\d+/oauth/device\?user_code=\S+ and check the code \S+\n"
            r"logged in as ada under oauth-ada\n",
            pattern=True,
        ),
        'exchange_oidc_token("my-org/my-model")': Expected("SecretStr('**********')\nmy-org\n"),
    },
    "testing.md": {
        "print(user.username, user.organizations, hub.request_count)": Expected("ada ('lab',) 1\n"),
        "def test_sync_client_sees_the_org": Expected("0 2 passed\n", driver=_PYTEST_DRIVER),
        "def greeting() -> str:": Expected("0 2 passed\n", driver=_PYTEST_DRIVER),
        "hub.fail_next(503)": Expected("ada 2\ninvalid_token 401\nrate_limited 30.0\n"),
        "async def approve_when_asked": Expected(
            "oauth-ada True\n"
            "['ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'GITHUB_ACTIONS']\n"
        ),
    },
    "errors.md": {
        "LOG_IN_AGAIN = {": Expected(
            "hello readme-user\nlog in again: unauthorized\nlog in again: invalid_token\n"
        )
    },
    "from-huggingface-hub.md": {
        "# huggingface_hub: user = whoami()": Expected(
            "readme-user ('my-org',)\nTrue SecretStr('**********')\n"
        )
    },
}


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _blocks() -> list[tuple[str, Block]]:
    return [
        (page.relative_to(DOCS).as_posix(), block)
        for page in _pages()
        for block in python_blocks(page.read_text(encoding="utf-8"))
    ]


def _expected_for(page: str, block: Block) -> Expected:
    entries = EXPECTED.get(page, {})
    keys = [key for key in entries if key in block.code]
    if len(keys) != 1:
        pytest.fail(
            f"docs/{page} line {block.line}: this python block matches {len(keys)} entries of "
            "EXPECTED in tests/test_docs_code.py. Add one (a line only this block has -> what "
            "it prints), or put `<!-- not run: reason -->` on the line above the block if it "
            "is a fragment on purpose."
        )
    return entries[keys[0]]


@pytest.fixture
def docs_env(fake_hub: FakeHub, tmp_path: Path) -> Iterator[dict[str, str]]:
    member = fake_hub.add_token(name="readme-user", orgs=["my-org"])
    outsider = fake_hub.add_token(name="outsider")
    fake_hub.oauth.device_interval = 0.05
    env = dict(os.environ)  # conftest's isolated_env already cleared every HF_* variable
    env.update(
        HF_ENDPOINT=fake_hub.url,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_TOKEN=member,
        MEMBER_TOKEN=member,
        OUTSIDER_TOKEN=outsider,
        HF_OIDC_ID_TOKEN=fake_hub.oauth.mint_id_token(resources=["my-org/my-model"]),
        HUB_AUTH_CACHE_SECRET="docs-" + "k3Jx9Qa7Lm2Zp8Rt5Vw1Yb4Nc6Hd0Fg",
        PYTHONDONTWRITEBYTECODE="1",
    )
    stop = threading.Event()

    def approve_device_logins() -> None:  # the person in front of the browser
        while not stop.wait(0.02):
            for code in fake_hub.oauth.pending_user_codes:
                fake_hub.oauth.approve(code, name="ada")

    approver = threading.Thread(target=approve_device_logins, daemon=True)
    approver.start()
    yield env
    stop.set()
    approver.join()


@pytest.mark.parametrize(
    ("page", "block"), _blocks(), ids=[f"{page}:{block.line}" for page, block in _blocks()]
)
def test_docs_block(
    page: str,
    block: Block,
    docs_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    where = f"docs/{page} line {block.line}"
    if block.not_run is not None:
        assert block.not_run, f"{where}: `not run:` needs a reason"
        pytest.skip(f"marked not run: {block.not_run}")
    assert block.language in PYTHON_LANGUAGES, (
        f"{where}: a ```{block.language} block cannot be run; write it as a ```python script "
        "or mark it `<!-- not run: reason -->`"
    )
    expected = _expected_for(page, block)
    if "redis" in block.code:
        server = request.getfixturevalue("redis_server")
        docs_env = dict(docs_env, REDIS_URL=server.url)
    run_block(
        block,
        expected,
        where=where,
        env=docs_env,
        folder=tmp_path / "block",
        module_name="docs_block",
    )


def test_every_expected_entry_matches_one_block() -> None:
    """An EXPECTED entry whose block was edited away would silently check nothing."""
    runnable = [(page, block) for page, block in _blocks() if block.not_run is None]
    for page, entries in EXPECTED.items():
        for key in entries:
            lines = [block.line for p, block in runnable if p == page and key in block.code]
            assert len(lines) == 1, f"EXPECTED[{page!r}] key {key!r} matches lines {lines}"


# -- the API reference ----------------------------------------------------------------------


def _attribute_docstrings(module: types.ModuleType) -> dict[str, str]:
    """Docstrings written under module-level assignments (``NAME = ...`` then a string),
    in ``module`` and in the modules it imports names from."""
    sources = [module.__name__]
    tree = ast.parse(inspect.getsource(module))
    sources += [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    ]
    docs: dict[str, str] = {}
    for name in reversed(sources):  # the module's own docstrings win
        if not name.startswith("hub_auth"):
            continue
        body = ast.parse(inspect.getsource(importlib.import_module(name))).body
        for node, after in itertools.pairwise(body):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                for target in targets:
                    if isinstance(target, ast.Name):
                        docs[target.id] = after.value.value
    return docs


def _docstring(module: types.ModuleType, name: str, attributes: dict[str, str]) -> str | None:
    value = getattr(module, name)
    if isinstance(value, type):
        return value.__dict__.get("__doc__")  # its own, not a base class's
    if name in attributes:  # a constant or a type alias, documented where it is assigned
        return attributes[name]
    if callable(value):  # a function, or a pytest fixture wrapping one
        doc = getattr(value, "__doc__", None)
        return doc if isinstance(doc, str) else None
    return None


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    attributes = _attribute_docstrings(module)
    missing = [
        name for name in module.__all__ if not (_docstring(module, name, attributes) or "").strip()
    ]
    assert not missing, (
        f"{module_name}: no docstring for {missing}: the API reference (docs/reference/) is "
        "generated from docstrings; write one (a string right under a constant)"
    )


def test_docstring_check_sees_a_missing_one() -> None:
    """The check above must fail for an undocumented function, class and constant."""
    module = types.ModuleType("example")

    def documented() -> None:
        """Documented."""

    def bare() -> None:
        pass

    class Bare:
        pass

    module.documented, module.bare, module.Bare, module.LIMIT = documented, bare, Bare, 3  # type: ignore[attr-defined]
    docs = {"LIMIT": ""}
    assert _docstring(module, "documented", docs) == "Documented."
    assert not _docstring(module, "bare", docs)
    assert not _docstring(module, "Bare", docs)
    assert not _docstring(module, "LIMIT", docs)
    assert _attribute_docstrings(importlib.import_module("hub_auth.fastapi"))["ROLE_ORDER"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_module_has_a_reference_page(module_name: str) -> None:
    directive = re.compile(rf"^::: {re.escape(module_name)}$", re.MULTILINE)
    pages = [p for p in (DOCS / "reference").glob("*.md") if directive.search(p.read_text())]
    assert len(pages) == 1, f"no docs/reference page renders `::: {module_name}`"
