"""``python -m benchmarks``: hub_auth side by side with raw aiohttp and huggingface_hub.

Starts FakeHub in a process of its own on 127.0.0.1, runs every case, prints one table of
figures measured in this run (medians of several repetitions; ratios paired repetition by
repetition) and after it the summary: the figures issues 23 and 24 set targets for
(``benchmarks/_summary.py``), each met or missed. It writes both, with the machine and the
versions, to ``docs/benchmarks.md`` (the summary at the top), and draws the ratios against
their targets in ``docs/benchmarks.png`` when matplotlib is installed; without matplotlib it
says so and keeps the chart of an earlier run, marked as such in the report.

    python -m benchmarks                 # the full run (about 5 minutes on 2 cores)
    python -m benchmarks --smoke         # tiny sizes: proves every case still works (CI)
    python -m benchmarks --only 1,4      # some cases only
    python -m benchmarks --out FILE.md   # write the report elsewhere

A case whose feature is missing is skipped with a note; a case that fails makes the exit
status 1 (after the table is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from benchmarks._common import DASH, FAILED, RATIO, TIMES, BenchContext, Row, Sizes
from benchmarks._fakehub import FakeHubProcess
from benchmarks._responder import ResponderProcess
from benchmarks._summary import SummaryLine, summary
from benchmarks.cases import (
    cache_fastapi,
    cli_startup,
    concurrent,
    imports,
    memory,
    sequential,
    sync_facade,
)

CASES: dict[str, ModuleType] = {
    "1": sequential,
    "2": concurrent,
    "3": sync_facade,
    "4": cli_startup,
    "5": cache_fastapi,
    "6": memory,
    "7": imports,
}
_PACKAGES = (
    "hub_auth",
    "aiohttp",
    "pydantic",
    "anyio",
    "huggingface_hub",
    "httpx2",
    "fastapi",
    "uvicorn",
)
_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_OUT = _ROOT / "docs" / "benchmarks.md"
_FINDINGS = Path(__file__).resolve().parent / "FINDINGS.md"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="hub_auth side by side with raw aiohttp and huggingface_hub.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, about 20 s: checks that every case still runs (CI)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the markdown report (default: docs/benchmarks.md; "
        "with --smoke, a temporary file)",
    )
    parser.add_argument(
        "--only", help="comma-separated case numbers to run (default: all), e.g. 1,4"
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    parser.add_argument(
        "--reps", type=int, help="repetitions per measurement (default: 9, smoke: 2)"
    )
    return parser.parse_args(argv)


# -- formatting ------------------------------------------------------------------------------


def format_value(row: Row) -> str:
    value = row.value
    if value is None:
        return "—"
    match row.unit:
        case "ratio":
            return f"{value:.2f}{TIMES}"
        case "req/s":
            return f"{value:,.0f} req/s"
        case "B":
            return f"{value:,.0f} B"
        case "MiB":
            return f"{value:.1f} MiB"
        case _:
            digits = 0 if abs(value) >= 100 else 1
            return f"{value:,.{digits}f} {row.unit}"


def _spread(row: Row) -> str:
    if not row.spread or row.value is None:
        return ""
    return row.spread + (TIMES if row.unit == RATIO else "")


def _cells(row: Row) -> list[str]:
    return [
        row.case,
        row.name,
        format_value(row),
        _spread(row),
        row.target,
        row.status,
        row.note,
    ]


_HEADER = ["case", "measurement", "median", f"spread (min{DASH}max)", "target", "result", "note"]


def text_table(rows: Sequence[Row]) -> str:
    table = [_HEADER, *(_cells(row) for row in rows)]
    used = [i for i in range(len(_HEADER)) if any(line[i] for line in table[1:])]
    widths = {i: max(len(line[i]) for line in table) for i in used}
    lines = []
    for number, line in enumerate(table):
        lines.append("  ".join(line[i].ljust(widths[i]) for i in used).rstrip())
        if number == 0:
            lines.append("  ".join("-" * widths[i] for i in used))
    return "\n".join(lines)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


_SUMMARY_HEADER = ["figure", "issue", "target", "this run", f"spread (min{DASH}max)", "result"]


def _summary_cells(line: SummaryLine) -> list[str]:
    row = line.row
    if row is None:
        return [line.headline.label, str(line.headline.issue), "", "—", "", line.result]
    return [
        line.headline.label,
        str(line.headline.issue),
        row.target,
        format_value(row),
        _spread(row),
        line.result,
    ]


def summary_text(lines: Sequence[SummaryLine]) -> str:
    """The summary as a plain-text table (what the run prints last)."""
    table = [_SUMMARY_HEADER, *(_summary_cells(line) for line in lines)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_SUMMARY_HEADER))]
    out = []
    for number, cells in enumerate(table):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in out)


def summary_markdown(lines: Sequence[SummaryLine]) -> str:
    out = [
        "| " + " | ".join(_SUMMARY_HEADER) + " |",
        "|" + "|".join(["---", "--:", "---", "--:", "--:", "---"]) + "|",
    ]
    for line in lines:
        cells = [_escape(cell) for cell in _summary_cells(line)]
        if line.result in ("MISSED", "FAILED", "not measured"):
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join(["---", "---", "--:", "--:", "---", "---", "---"]) + "|",
    ]
    for row in rows:
        cells = [_escape(cell) for cell in _cells(row)]
        if row.status == "MISSED":
            cells[5] = "**MISSED**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _uname() -> str:
    """What ``uname -a`` says, without a process for it (``platform.uname`` off POSIX)."""
    if hasattr(os, "uname"):
        return " ".join(os.uname())
    return " ".join(platform.uname())


def _git_revision() -> str:
    """The commit measured (``+ changes`` when the work tree differs from it)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def machine_lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical" + (f" ({usable} usable)" if usable else "")
    return [
        f"- `uname`: `{_uname()}`",
        f"- CPU: {_cpu_model()}, {cores}; memory {_memory_total()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"`{sys.executable}`",
        "- Packages: " + ", ".join(f"{name} {_version(name)}" for name in _PACKAGES),
        f"- hub_auth source: commit {_git_revision()}",
    ]


# -- the report ------------------------------------------------------------------------------


def _case_descriptions(numbers: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for number in numbers:
        doc = (CASES[number].__doc__ or "").strip()
        if doc:
            lines += [doc, ""]
    return lines


@dataclasses.dataclass(frozen=True)
class Chart:
    """The PNG beside the report: drawn from this run, or kept from an earlier one."""

    path: Path
    from_this_run: bool


def markdown(
    rows: Sequence[Row],
    *,
    command: str,
    started: datetime.datetime,
    seconds: float,
    sizes: Sizes,
    numbers: Sequence[str],
    chart: Chart | None,
    errors: Sequence[str],
    load: tuple[str, str],
) -> str:
    intro = (
        "hub_auth side by side with raw aiohttp (the floor: the same request with no SDK) and "
        "huggingface_hub. Client-versus-client cases (1-3) run against a lean loopback responder "
        "(`benchmarks/_responder.py`: a plain asyncio protocol in a process of its own that "
        "answers each token with canned HTTP/1.1 keep-alive bytes, FakeHub's whoami body), so "
        "the figures show the clients and not the server; the behaviour cases run against "
        "FakeHub. The rows marked TLS repeat a case over https, with a throw-away CA. Each "
        "case reports wall time and this process's CPU time (`time.process_time`) per call. "
        "Every figure "
        f"below was measured in the same run: each is the median of {sizes.reps} repetitions "
        f"({sizes.cli_runs} runs of each command in the CLI case, {sizes.import_runs} of each "
        f"import in the import case, {sizes.http_reps} batches through uvicorn in the FastAPI "
        f"case, {sizes.steady_reps} repetitions in its in-process part and in the facade case), "
        "with the "
        "fastest and slowest repetition beside it, and each ratio is the median of "
        "per-repetition ratios of runs made back to back. How each case measures is described "
        "under [How each case is measured](#how-each-case-is-measured)."
    )
    parts = [
        "# Benchmarks",
        "",
        *textwrap.wrap(
            "Generated by the command below; do not edit by hand. This page is the one source "
            "of the project's performance figures: the README and the other pages link here.",
            width=96,
        ),
        "",
        "```sh",
        command,
        "```",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all; load average "
        f"{load[0]} at the start, {load[1]} at the end (other work on the machine moves single "
        "figures; the paired ratios are steadier).",
        "",
        "## Summary",
        "",
        *textwrap.wrap(
            "The figures issues 23 and 24 set targets for, from this run (each is a row of the "
            "[results](#results) below).",
            width=96,
        ),
        "",
        summary_markdown(summary(rows)),
        "",
    ]
    if chart is not None:
        parts += [f"![ratios against their targets]({chart.path.name})", ""]
        if not chart.from_this_run:
            parts += [
                "The chart is from an earlier run: matplotlib was not installed for this one "
                "(or `--no-chart` was given), so it does not match the tables.",
                "",
            ]
    parts += [
        "## About these figures",
        "",
        *textwrap.wrap(intro, width=96),
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Results",
        "",
        markdown_table(rows),
        "",
    ]
    if errors:
        parts += ["## Errors", "", *(f"- {error}" for error in errors), ""]
    parts += ["## How each case is measured", "", *_case_descriptions(numbers)]
    if _FINDINGS.exists():
        parts += [_FINDINGS.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(parts).rstrip() + "\n"


def draw_chart(rows: Sequence[Row], path: Path) -> Path | None:
    """A bar per ratio that has a target, the target marked; ``None`` without matplotlib.

    The TLS rows have no targets (theirs are stated for plain http), so they are left out.
    """
    try:
        # Imported by name: matplotlib is optional, and not a dependency of the project.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    ratios = [
        row for row in rows if row.unit == RATIO and row.value is not None and row.limit is not None
    ]
    if not ratios:
        return None
    labels = [f"{row.case.split()[0]}. {row.name}" for row in ratios]
    values = [row.value or 0.0 for row in ratios]
    colors = ["#2e7d32" if row.met else "#c62828" for row in ratios]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(ratios) + 1.6))
    positions = list(range(len(ratios)))[::-1]
    # Bars grow from 1x (parity) on a log scale, so 0.5x and 2x look equally far from it.
    axes.barh(positions, [value - 1.0 for value in values], left=1.0, color=colors)
    axes.axvline(1.0, color="#455a64", lw=0.8)
    for position, row, value in zip(positions, ratios, values, strict=True):
        # The label goes past both the bar and the target mark, so neither hides it.
        if value >= 1.0:
            where, side = max(value, row.limit or value), "left"
        else:
            where, side = min(value, row.limit or value), "right"
        axes.text(where, position, f" {value:.2f}{TIMES} ", va="center", ha=side, fontsize=8)
        if row.limit is not None:
            axes.plot([row.limit] * 2, [position - 0.4, position + 0.4], color="black", lw=2)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_xscale("log")
    ticks = [0.1, 0.25, 0.5, 1, 2, 4, 8]
    low = min([*values, *(row.limit or 1.0 for row in ratios)]) / 1.5
    high = max([*values, *(row.limit or 1.0 for row in ratios)]) * 1.5
    axes.set_xlim(low, high)
    axes.set_xticks([tick for tick in ticks if low <= tick <= high])
    axes.set_xticklabels([f"{tick:g}{TIMES}" for tick in ticks if low <= tick <= high])
    axes.minorticks_off()
    axes.set_xlabel("ratio (log scale); black bar: target; green met, red missed")
    axes.set_title("hub_auth benchmarks: ratios from one run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _chart(rows: Sequence[Row], path: Path, *, draw: bool) -> Chart | None:
    """Draw the chart; without matplotlib (or when told not to draw), keep an earlier one."""
    if draw:
        if draw_chart(rows, path) is not None:
            return Chart(path, from_this_run=True)
        print(
            "note: matplotlib is not installed, so the chart was not redrawn"
            + (f"; {path} is kept from an earlier run" if path.exists() else ""),
            file=sys.stderr,
        )
    return Chart(path, from_this_run=False) if path.exists() else None


# -- main ------------------------------------------------------------------------------------


def _run_case(
    number: str, run: Callable[[BenchContext], list[Row]], ctx: BenchContext
) -> tuple[list[Row], str | None]:
    module = CASES[number]
    case_name = getattr(module, "CASE", number)
    start = time.perf_counter()
    print(f"... case {case_name}", file=sys.stderr, flush=True)
    try:
        rows = run(ctx)
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        return [Row(case_name, "case failed", None, FAILED, note=message[:300])], message
    print(f"    {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return rows, None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    sizes = Sizes.smoke() if args.smoke else Sizes.full()
    if args.reps is not None:
        if args.reps < 1:
            print("error: --reps must be >= 1", file=sys.stderr)
            return 2
        sizes = dataclasses.replace(sizes, reps=args.reps, http_reps=max(args.reps, 2))
    numbers = list(CASES)
    if args.only:
        numbers = [part.strip() for part in args.only.split(",") if part.strip()]
        unknown = [number for number in numbers if number not in CASES]
        if unknown:
            print(
                f"error: unknown case(s) {', '.join(unknown)}; cases are 1-{len(CASES)}",
                file=sys.stderr,
            )
            return 2
    out: Path | None = args.out
    if out is None:
        out = (
            Path(tempfile.gettempdir()) / "hub_auth-benchmarks-smoke.md"
            if args.smoke
            else _DEFAULT_OUT
        )
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m benchmarks", *given])

    started = datetime.datetime.now(datetime.UTC)
    load_before = _load_average()
    cores = os.cpu_count() or 1
    if load_before != "unknown" and float(load_before) > cores / 2 and not args.smoke:
        print(
            f"warning: load average {load_before} on {cores} cores: other work will skew "
            "the figures",
            file=sys.stderr,
        )
    clock = time.perf_counter()
    needed = max(sizes.concurrent_tokens, sizes.memory_entries, 100)
    rows: list[Row] = []
    errors: list[str] = []
    with FakeHubProcess(needed) as hub, ResponderProcess(needed) as lean:
        ctx = BenchContext(
            sizes=sizes, hub_url=hub.url, tokens=hub.tokens, smoke=args.smoke, lean_url=lean.url
        )
        for number in numbers:
            case_rows, error = _run_case(number, CASES[number].run, ctx)
            rows += case_rows
            if error is not None:
                errors.append(f"case {number}: {error}")
    seconds = time.perf_counter() - clock

    print()
    print(text_table(rows))
    print()
    print("Summary (issues 23 and 24):")
    print(summary_text(summary(rows)))
    print()
    out.parent.mkdir(parents=True, exist_ok=True)
    chart = _chart(rows, out.with_suffix(".png"), draw=not args.no_chart)
    out.write_text(
        markdown(
            rows,
            command=command,
            started=started,
            seconds=seconds,
            sizes=sizes,
            numbers=numbers,
            chart=chart,
            errors=errors,
            load=(load_before, _load_average()),
        ),
        encoding="utf-8",
    )
    if chart is None:
        print(f"report: {out} (no chart)")
    else:
        kept = "" if chart.from_this_run else " (kept from an earlier run)"
        print(f"report: {out}, chart: {chart.path}{kept}")
    print(f"{seconds:.0f} s in all")
    if errors:
        print(f"{len(errors)} case(s) failed:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
