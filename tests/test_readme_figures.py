"""The numbers README.md states about the test suite come from the suite: the test counts it
gives stay within 10 % of what pytest collects (a subprocess: it collects the whole suite)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stated(pattern: str) -> int:
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    found = re.search(pattern, readme)
    assert found is not None, f"README no longer states {pattern!r}"
    return int(found.group(1).replace(",", ""))


def _collected(*options: str) -> int:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *options,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    found = re.search(r"^(\d+)(?:/\d+)? tests? collected", done.stdout, re.MULTILINE)
    assert found is not None, done.stdout[-2000:] + done.stderr[-2000:]
    return int(found.group(1))


def test_readme_test_counts_match_the_suite() -> None:
    everything = _stated(r"Run the tests \(about ([\d,]+) of them")
    quick = _stated(r'-m "not slow"` skips[^(]*\(about ([\d,]+) tests')
    collected = _collected()
    assert abs(everything - collected) <= 0.1 * collected
    not_slow = _collected("-m", "not slow")
    assert abs(quick - not_slow) <= 0.1 * not_slow
