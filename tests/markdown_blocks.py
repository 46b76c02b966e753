"""Code blocks of Markdown files, and running them as scripts: shared by the README's tests
(tests/test_readme.py) and the documentation site's (tests/test_docs_code.py), so a page's
examples cannot rot.

A block that is a fragment on purpose is preceded by ``<!-- not run: reason -->``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
# Python-ish fences the runner cannot run: they must be marked not-run to be allowed.
UNRUNNABLE_LANGUAGES = frozenset({"pycon", "ipython", "pytb"})
TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    language: str
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason given by a `<!-- not run: reason -->` line just above


def extract_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order (CommonMark fences, no nesting)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not _closes(lines[end], fence):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        blocks.append(
            Block(
                language=opening["info"].lower(),
                line=index + 1,
                code="\n".join(body) + "\n",
                not_run=_not_run_reason(lines[:index]),
            )
        )
        index = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


def _not_run_reason(before: list[str]) -> str | None:
    for line in reversed(before):
        if line.strip():
            marker = _NOT_RUN.match(line.strip())
            return marker["reason"] if marker else None
    return None


def python_blocks(markdown: str) -> list[Block]:
    """The blocks a runner must either run or see marked not-run."""
    return [
        block
        for block in extract_blocks(markdown)
        if block.language in PYTHON_LANGUAGES | UNRUNNABLE_LANGUAGES
    ]


@dataclass(frozen=True)
class Expected:
    """What a block must do: print ``stdout`` exactly, run as a script or via ``driver``.

    ``driver`` is Python run in the block's folder after the block is saved as
    ``module_name``.py (for blocks that define something, such as a FastAPI app).
    """

    stdout: str
    driver: str | None = None
    pattern: bool = False  # ``stdout`` is a regular expression the whole output must match


def run_block(
    block: Block,
    expected: Expected,
    *,
    where: str,
    env: dict[str, str],
    folder: Path,
    module_name: str = "readme_block",
) -> None:
    """Run ``block`` in a fresh interpreter in ``folder`` and check it against ``expected``.

    ``where`` names the block in failure messages (``"README.md line 12"``).
    """
    folder.mkdir()
    script = folder / f"{module_name}.py"
    script.write_text(block.code, encoding="utf-8")
    if expected.driver is not None:
        driver = folder / "driver.py"
        driver.write_text(expected.driver, encoding="utf-8")
        script = driver
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr}"
    if expected.pattern:
        assert re.fullmatch(expected.stdout, done.stdout), f"{where} printed {done.stdout!r}"
    else:
        assert done.stdout == expected.stdout, f"{where} printed {done.stdout!r}"
    assert done.stderr == "", f"{where} wrote to stderr:\n{done.stderr}"
