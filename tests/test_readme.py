"""README.md's code runs as written, so the README cannot rot.

Every ```python block runs in a fresh interpreter against a FakeHub started here, with
``HF_ENDPOINT`` pointing at it, ``HF_HOME`` in a temporary folder and ``HF_TOKEN`` for a
FakeHub user, so blocks that use the defaults (``HubAuth()``, ``hf_auth.whoami()``) talk to
FakeHub. Each block is listed in ``EXPECTED`` with what it prints (or with a driver that
exercises what it defines); a block that is a fragment on purpose is preceded by
``<!-- not run: reason -->``. A new block that is neither fails ``test_readme_block``.

The shell side: the Quickstart test command is the one ``.ci/run`` runs, and the
"FakeHub from the shell" tokens file starts ``python -m hub_auth.testing`` and serves the
users it describes to ``hub-auth whoami``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub_auth.testing import FakeHub
from tests.markdown_blocks import (
    PYTHON_LANGUAGES,
    TIMEOUT,
    Block,
    Expected,
    extract_blocks,
    python_blocks,
    run_block,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Expected.driver runs after the block is saved as ``readme_block.py``; its environment has
# ``MEMBER_TOKEN`` (user ``readme-user`` in ``my-org``, also ``HF_TOKEN``) and
# ``OUTSIDER_TOKEN`` (user ``outsider``, in no org).

_FASTAPI_DRIVER = textwrap.dedent(
    """
    import os

    from fastapi.testclient import TestClient

    from readme_block import app

    def bearer(name):
        return {"authorization": "Bearer " + os.environ[name]}

    with TestClient(app) as client:
        member = client.get("/me", headers=bearer("MEMBER_TOKEN"))
        print(member.status_code, member.json())
        print(client.get("/me", headers=bearer("OUTSIDER_TOKEN")).status_code)
        print(client.get("/me").status_code)
    """
)

# A distinctive line of each runnable README block -> what it must print.
EXPECTED: dict[str, Expected] = {
    # The opening example: defaults (HF_TOKEN, HF_ENDPOINT) reach FakeHub.
    "async with HubAuth() as auth:": Expected("readme-user ('my-org',)\n"),
    # "Testing your own code": its own FakeHub, an assert, nothing printed.
    "async with FakeHub() as hub:": Expected(""),
    "with HubAuthSync() as auth:": Expected("readme-user ('my-org',)\n"),
    "from hub_auth import sync as hf_auth": Expected("readme-user True\n"),
    "app = FastAPI(lifespan=lifespan)": Expected(
        "200 {'username': 'readme-user', 'orgs': ['my-org']}\n403\n401\n",
        driver=_FASTAPI_DRIVER,
    ),
}


def _blocks_to_check() -> list[Block]:
    return python_blocks(README.read_text(encoding="utf-8"))


def _expected_for(block: Block) -> Expected:
    keys = [key for key in EXPECTED if key in block.code]
    if len(keys) != 1:
        pytest.fail(
            f"README.md line {block.line}: this python block matches {len(keys)} entries of "
            "EXPECTED in tests/test_readme.py. Add one (a line only this block has -> what it "
            "prints), or put `<!-- not run: reason -->` on the line above the block if it is "
            "a fragment on purpose."
        )
    return EXPECTED[keys[0]]


@pytest.fixture
def readme_env(fake_hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    member = fake_hub.add_token(name="readme-user", orgs=["my-org"])
    outsider = fake_hub.add_token(name="outsider")
    env = dict(os.environ)  # conftest's isolated_env already cleared every HF_* variable
    env.update(
        HF_ENDPOINT=fake_hub.url,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_TOKEN=member,
        MEMBER_TOKEN=member,
        OUTSIDER_TOKEN=outsider,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.mark.parametrize("block", _blocks_to_check(), ids=lambda block: f"README.md:{block.line}")
def test_readme_block(block: Block, readme_env: dict[str, str], tmp_path: Path) -> None:
    if block.not_run is not None:
        assert block.not_run, f"README.md line {block.line}: `not run:` needs a reason"
        pytest.skip(f"marked not run: {block.not_run}")
    assert block.language in PYTHON_LANGUAGES, (
        f"README.md line {block.line}: a ```{block.language} block cannot be run; write it "
        "as a ```python script or mark it `<!-- not run: reason -->`"
    )
    run_block(
        block,
        _expected_for(block),
        where=f"README.md line {block.line}",
        env=readme_env,
        folder=tmp_path / "block",
    )


def test_every_expected_entry_matches_one_block() -> None:
    """An EXPECTED entry whose block was edited away would silently check nothing."""
    runnable = [block for block in _blocks_to_check() if block.not_run is None]
    for key in EXPECTED:
        matching = [block.line for block in runnable if key in block.code]
        assert len(matching) == 1, f"EXPECTED key {key!r} matches README lines {matching}"


def test_extractor_reads_fences_and_not_run_markers() -> None:
    markdown = textwrap.dedent(
        """\
        Text.

        ```python
        print("one")
        ```

        <!-- not run: needs a GPU -->

        ```py
        import torch
        ```

        ~~~~sh
        echo ```python
        ~~~~

        - a list item:

          ```python
          print("indented")
          ```

        ```pycon
        >>> 1
        ```
        """
    )
    blocks = python_blocks(markdown)
    assert [(b.language, b.line, b.code, b.not_run) for b in blocks] == [
        ("python", 3, 'print("one")\n', None),
        ("py", 9, "import torch\n", "needs a GPU"),
        ("python", 19, 'print("indented")\n', None),
        ("pycon", 23, ">>> 1\n", None),
    ]


def test_readme_test_command_is_the_one_ci_runs() -> None:
    readme_commands = [
        line
        for block in extract_blocks(README.read_text(encoding="utf-8"))
        if block.language == "sh"
        for line in block.code.splitlines()
        if "-m pytest" in line
    ]
    assert len(readme_commands) == 1, readme_commands
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands[0] in ci_lines


def _readme_tokens_file() -> dict[str, object]:
    blocks = [b for b in extract_blocks(README.read_text(encoding="utf-8")) if b.language == "sh"]
    heredocs = [
        match["body"]
        for block in blocks
        for match in re.finditer(r"<<'EOF'\n(?P<body>.*?)\nEOF\n", block.code, re.DOTALL)
    ]
    assert len(heredocs) == 1, "expected one tokens file written with <<'EOF' in README.md"
    data = json.loads(heredocs[0])
    assert isinstance(data, dict)
    return data


def test_readme_fakehub_shell_session(tmp_path: Path) -> None:
    """The README's tokens file and seeded users, served by the FakeHub CLI to hub-auth."""
    tokens = _readme_tokens_file()
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens), encoding="utf-8")
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub_auth.testing",
            "--tokens-file",
            str(tokens_file),
            "--seed-users",
            "2",
            "--print-tokens",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stdout is not None
        listening = hub.stdout.readline()
        assert listening.startswith("FakeHub listening on http://127.0.0.1:"), listening
        served: dict[str, str] = {}  # user name -> token, from the 'TOKEN NAME' lines
        for _ in range(len(tokens) + 2):
            token, name = hub.stdout.readline().split()
            served[name] = token
        assert set(served) >= {"user0", "user1", "ada"}

        def whoami(token: str) -> str:
            env = dict(os.environ, HF_ENDPOINT=listening.split()[-1], HF_TOKEN=token)
            done = subprocess.run(
                [sys.executable, "-m", "hub_auth.cli", "whoami"],
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert whoami(served["user0"]).startswith("user0 (User0)\n")
        ada = whoami(served["ada"])
        assert "orgs:     analytical-engines, lab\n" in ada
        assert "token:    ada-laptop, role write\n" in ada
    finally:
        hub.terminate()
        hub.communicate(timeout=TIMEOUT)
    assert hub.returncode == 0
