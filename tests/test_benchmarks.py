"""``python -m benchmarks``: the summary of issues 23 and 24's figures, the report and the chart.

The figures themselves are not asserted (they depend on the machine); what is checked is that
every summary figure is measured by some case, lands in the printed summary and at the top of
the report, that met, missed and unmeasured figures read as such, and that the chart of an
earlier run is kept, and said to be older, when matplotlib is missing.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import __main__ as bench
from benchmarks._common import TIMES, Row, Sample, Sizes, interleaved_turns, ratio_row
from benchmarks._summary import HEADLINES, Figure, summary
from benchmarks.cases import cli_startup

ROOT = Path(__file__).resolve().parent.parent


def _rows() -> list[Row]:
    return [
        ratio_row(
            "1 sequential whoami", "cpu", [1.05, 1.2, 1.0], at_most=1.1, headline=Figure.WHOAMI_CPU
        ),
        ratio_row("4 CLI commands", "token", [0.3, 0.28], at_most=0.2, headline=Figure.CLI_TOKEN),
        ratio_row("4 CLI commands", "no headline", [0.5, 0.6]),
    ]


def _report(rows: list[Row], chart: bench.Chart | None) -> str:
    return bench.markdown(
        rows,
        command="python -m benchmarks",
        started=datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC),
        seconds=1.0,
        sizes=Sizes.smoke(),
        numbers=["1", "4"],
        chart=chart,
        errors=[],
        load=("0.10", "0.20"),
    )


def test_summary_lists_every_figure_in_order_and_says_which_were_not_measured() -> None:
    lines = summary(_rows())
    assert [line.headline for line in lines] == list(HEADLINES)
    results = {line.headline.figure: line.result for line in lines}
    assert results[Figure.WHOAMI_CPU] == "met"  # median 1.05 <= 1.1
    assert results[Figure.CLI_TOKEN] == "MISSED"
    assert results[Figure.IMPORT_SYNC] == "not measured"
    assert sum(result == "not measured" for result in results.values()) == len(HEADLINES) - 2


def test_a_figure_claimed_twice_or_unknown_is_an_error() -> None:
    twice = [*_rows(), ratio_row("x", "again", [1.0], headline=Figure.CLI_TOKEN)]
    with pytest.raises(ValueError, match="two rows"):
        summary(twice)
    with pytest.raises(ValueError, match="unknown"):
        summary([ratio_row("x", "y", [1.0], headline="no-such-figure")])


def test_printed_summary_and_report_show_targets_and_outcomes() -> None:
    text = bench.summary_text(summary(_rows()))
    token_line = next(line for line in text.splitlines() if "hub-auth token" in line)
    assert f"≤ 0.2{TIMES}" in token_line and f"0.29{TIMES}" in token_line
    assert "MISSED" in token_line
    report = _report(_rows(), None)
    # The summary comes first, then the details; the outcomes stand out in markdown.
    assert report.index("## Summary") < report.index("## Results")
    figure = f"| `hub-auth token` ÷ `hf auth token`, wall | 24 | ≤ 0.2{TIMES} | 0.29{TIMES} |"
    assert figure in report
    assert "**MISSED** |" in report and "**not measured** |" in report
    assert "benchmarks.png" not in report


def test_an_old_chart_is_kept_and_marked_when_matplotlib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "benchmarks.png"
    chart.write_bytes(b"an earlier run's chart")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    kept = bench._chart(_rows(), chart, draw=True)
    assert kept == bench.Chart(chart, from_this_run=False)
    assert chart.read_bytes() == b"an earlier run's chart"
    assert "matplotlib is not installed" in capsys.readouterr().err
    report = _report(_rows(), kept)
    assert "![ratios against their targets](benchmarks.png)" in report
    assert "The chart is from an earlier run" in report
    # No chart before and none drawn: the report shows none.
    assert bench._chart(_rows(), tmp_path / "none.png", draw=True) is None


def test_the_chart_is_redrawn_from_the_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "benchmarks.png"
    chart.write_bytes(b"old")
    drawn = bench._chart(_rows(), chart, draw=True)
    assert drawn == bench.Chart(chart, from_this_run=True)
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert "from an earlier run" not in _report(_rows(), drawn)


def test_cli_case_checks_that_a_command_did_its_work(tmp_path: Path) -> None:
    tokens = ["hf_" + letter * 34 for letter in "abc"]
    home = tmp_path / "hf_home"
    cli_startup._write_login(home, tokens)
    assert cli_startup._switched("", home, tokens)  # bench-write is still active
    assert cli_startup._logged_out("", home, tokens) == "left token, stored_tokens behind"
    (home / "token").write_text(tokens[0], encoding="utf-8")
    assert cli_startup._switched("", home, tokens) == ""
    (home / "token").unlink()
    (home / "stored_tokens").unlink()
    assert cli_startup._logged_out("", home, tokens) == ""


def test_smoke_run_measures_every_summary_figure(tmp_path: Path) -> None:
    """What CI runs: every case at tiny sizes, the summary printed last and written first."""
    out = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    details, _, printed = done.stdout.partition("Summary (issues 23 and 24):")
    assert "7 import time" in details and "4 CLI commands" in details
    for headline in HEADLINES:
        line = next(line for line in printed.splitlines() if line.startswith(headline.label))
        assert "not measured" not in line, line
    report = out.read_text(encoding="utf-8")
    assert report.index("## Summary") < report.index("## Results")
    assert "not measured" not in report
    assert out.with_suffix(".png").exists() or "matplotlib" in done.stderr


def test_turns_alternate_the_contenders_and_sum_each_repetition() -> None:
    """Each repetition is the sum of its turns, and the contenders take the turns in
    rotating order, so neither always runs first (what pairs them in time)."""
    calls: list[str] = []

    def contender(name: str, cost: float) -> Callable[[], Sample]:
        def turn() -> Sample:
            calls.append(name)
            return Sample(cost, cost / 2)

        return turn

    samples = interleaved_turns(2, 3, {"a": contender("a", 1.0), "b": contender("b", 10.0)})
    assert samples == {
        "a": [Sample(3.0, 1.5), Sample(3.0, 1.5)],
        "b": [Sample(30.0, 15.0), Sample(30.0, 15.0)],
    }
    first_of_each_turn = calls[::2]
    assert first_of_each_turn == ["a", "b", "a", "b", "a", "b"]
