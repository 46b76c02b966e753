"""``python -m benchmarks``: hub_auth side by side with raw aiohttp and huggingface_hub.

Starts FakeHub in a process of its own on 127.0.0.1, runs every case, prints one table of
figures measured in this run (medians of several repetitions; ratios paired repetition by
repetition) and writes it, with the machine and the versions, to ``docs/benchmarks.md``, plus a
chart of the ratios (``docs/benchmarks.png``) when matplotlib happens to be installed.

    python -m benchmarks                 # the full run (a few minutes at most)
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

from benchmarks._common import DASH, FAILED, RATIO, TIMES, TLS_SUFFIX, BenchContext, Row, Sizes
from benchmarks._fakehub import FakeHubProcess
from benchmarks._responder import ResponderProcess
from benchmarks.cases import (
    cache_fastapi,
    cli_startup,
    concurrent,
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
        help="tiny sizes, a few seconds: checks that every case still runs (CI)",
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


def markdown_table(rows: Sequence[Row]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join(["---", "---", "--:", "--:", "---", "---", "---"]) + "|",
    ]
    for row in rows:
        cells = [escape(cell) for cell in _cells(row)]
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
    try:
        return subprocess.run(
            ["uname", "-a"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
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
        f"- `uname -a`: `{_uname()}`",
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


def markdown(
    rows: Sequence[Row],
    *,
    command: str,
    started: datetime.datetime,
    seconds: float,
    sizes: Sizes,
    numbers: Sequence[str],
    chart: Path | None,
    errors: Sequence[str],
    load: tuple[str, str],
) -> str:
    targets = [row for row in rows if row.target]
    summary = []
    for row in targets:
        outcome = {"met": "met", "MISSED": "**missed**", "FAILED": "**failed**"}.get(
            row.status, row.status
        )
        figure = format_value(row) if row.value is not None else row.note
        summary.append(f"- {row.case}, {row.name}: {outcome} ({figure}; target {row.target})")
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
        f"({sizes.cli_runs} runs of each command in the CLI case, {sizes.http_reps} batches in "
        "the FastAPI case), with the fastest and slowest "
        "repetition beside it, and each ratio is the median of per-repetition ratios of runs "
        "made back to back. Generated by the command below; do not edit by hand."
    )
    parts = [
        "# Benchmarks",
        "",
        *textwrap.wrap(intro, width=96),
        "",
        "```sh",
        command,
        "```",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all; load average "
        f"{load[0]} at the start, {load[1]} at the end.",
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
    if chart is not None:
        parts += [f"![ratios against their targets]({chart.name})", ""]
    if summary:
        parts += ["## Targets", "", *summary, ""]
    if errors:
        parts += ["## Errors", "", *(f"- {error}" for error in errors), ""]
    parts += ["## How each case is measured", "", *_case_descriptions(numbers)]
    if _FINDINGS.exists():
        parts += [_FINDINGS.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(parts).rstrip() + "\n"


def draw_chart(rows: Sequence[Row], path: Path) -> Path | None:
    """A bar per ratio with its target marked; nothing when matplotlib is not installed."""
    try:
        # Imported by name: matplotlib is optional, and not a dependency of the project.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    ratios = [row for row in rows if row.unit == RATIO and row.value is not None]
    if not ratios:
        return None
    labels = [
        f"{row.case.split()[0]}.{' TLS:' if row.case.endswith(TLS_SUFFIX) else ''} {row.name}"
        for row in ratios
    ]
    values = [row.value or 0.0 for row in ratios]
    colors = [
        "#2e7d32" if row.met else "#c62828" if row.met is False else "#78909c" for row in ratios
    ]
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
    axes.set_xlabel("ratio (log scale); black bar: target; green met, red missed, grey no target")
    axes.set_title("hub_auth benchmarks: ratios from one run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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
            print(f"error: unknown case(s) {', '.join(unknown)}; cases are 1-6", file=sys.stderr)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    chart_path = out.with_suffix(".png")
    chart = None if args.no_chart else draw_chart(rows, chart_path)
    if chart is None and out == _DEFAULT_OUT and chart_path.exists():
        chart_path.unlink()  # a chart from an earlier run would not match this table
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
    print(f"report: {out}" + (f", chart: {chart}" if chart else ""))
    print(f"{seconds:.0f} s in all")
    if errors:
        print(f"{len(errors)} case(s) failed:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
