"""What every case shares: result rows, sizes, repetition and median helpers."""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = [
    "DASH",
    "FAILED",
    "RATIO",
    "TIMES",
    "TLS_SUFFIX",
    "BenchContext",
    "Row",
    "Sample",
    "Sizes",
    "Stopwatch",
    "bench_env",
    "cpus",
    "interleaved",
    "median",
    "pairwise_ratio",
    "ratio_row",
    "skipped",
    "spread",
    "timed_run",
    "timing_row",
    "walls",
]

T = TypeVar("T")

TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"
RATIO = "ratio"
FAILED = "failed"
TLS_SUFFIX = ", TLS"  # ends the case name of the rows measured over https


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured figure, or a ratio checked against a target.

    ``unit`` is ``RATIO`` for ratios (``value`` is then what ``name`` says divided by what
    it says). ``met`` is ``None`` when the row has no target or was skipped; ``limit`` is the
    target's number (for the chart). ``headline`` names the figure of the summary table this
    row is (one of ``benchmarks._summary.Figure``), or is empty.
    """

    case: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    spread: str = ""
    note: str = ""
    limit: float | None = None
    headline: str = ""

    @property
    def status(self) -> str:
        if self.unit == FAILED:
            return "FAILED"
        if self.value is None:
            return "skipped"
        if self.met is None:
            return ""
        return "met" if self.met else "MISSED"


@dataclass(frozen=True)
class Sizes:
    """How much work each case does; ``full()`` for the documented figures, ``smoke()`` for CI."""

    reps: int
    sequential_calls: int
    concurrent_tokens: int
    hf_threads: int
    sync_calls: int
    cli_runs: int
    import_runs: int
    cache_hits: int
    http_requests: int
    http_reps: int
    http_concurrency: int
    memory_entries: int

    @property
    def steady_reps(self) -> int:
        """Three times ``reps``, for the figures that are a few µs (or a ratio near 1) between
        rounds of about a second, whose speed drifts by more than that on a shared machine:
        the in-process part of case 5 (which also takes its turns, ``interleaved_turns``) and
        case 3 (9 repetitions put case 5's difference at 9-16 µs, 27 at 5-6 µs)."""
        return 3 * self.reps

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            reps=9,
            sequential_calls=2_000,
            concurrent_tokens=1_000,
            hf_threads=32,
            sync_calls=300,
            cli_runs=15,
            import_runs=15,
            cache_hits=20_000,
            http_requests=2_000,
            http_reps=30,
            http_concurrency=32,
            memory_entries=10_000,
        )

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            reps=2,
            sequential_calls=20,
            concurrent_tokens=20,
            hf_threads=4,
            sync_calls=5,
            cli_runs=1,
            import_runs=1,
            cache_hits=100,
            http_requests=64,
            http_reps=2,
            http_concurrency=8,
            memory_entries=50,
        )


@dataclass
class BenchContext:
    """What a case gets: the sizes, the running servers and their tokens.

    ``hub_url`` is FakeHub (behaviour cases: the cache, FastAPI, memory); ``lean_url`` is the
    lean responder (``benchmarks._responder``) with the same tokens, the server of every
    client-versus-client case. ``tls`` is true in the child process that measures a case's
    TLS variant (``benchmarks._tls``): both URLs are then the https responder, and the case
    must not start another.
    """

    sizes: Sizes
    hub_url: str
    tokens: Sequence[str]
    smoke: bool
    notes: list[str] = field(default_factory=list)
    tls: bool = False
    lean_url: str = ""

    @property
    def client_url(self) -> str:
        """Where client-versus-client cases send their requests (the lean responder)."""
        return self.lean_url or self.hub_url


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no token, no update check, no telemetry.

    huggingface_hub's CLI asks PyPI for a newer version once a day unless told not to; the
    benchmark must never leave loopback, and a timeout would also distort its figure.
    ``PYTHONDONTWRITEBYTECODE`` is dropped: an installed package has its ``.pyc`` files (pip
    compiles them), and without them every start-up would recompile hub_auth's sources.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGING_FACE_HUB_")) and key != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        {
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def interleaved(reps: int, contenders: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Run each contender once per repetition, in rotating order; collect their timings.

    A contender returns what it measured itself (so set-up stays outside). Rotating
    the order means no contender always runs right after the same neighbour, and pairing
    repetition i of one with repetition i of another cancels slow drifts of the machine.
    """
    names = list(contenders)
    results: dict[str, list[T]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            gc.collect()
            results[name].append(contenders[name]())
    return results


def interleaved_turns(
    reps: int, turns: int, contenders: Mapping[str, Callable[[], Sample]]
) -> dict[str, list[Sample]]:
    """``interleaved``, with each repetition cut into ``turns`` short turns: the contenders
    take turns (in rotating order), and a repetition's sample is the sum of its turns.

    Paired repetitions then ran over the same stretch of time, a few milliseconds apart
    instead of a second: this machine's speed drifts by more than the few µs these figures
    are about, and turns a second apart put the drift into the difference.
    """
    names = list(contenders)
    results: dict[str, list[Sample]] = {name: [] for name in names}
    for rep in range(reps):
        gc.collect()
        walls = dict.fromkeys(names, 0.0)
        cpus = dict.fromkeys(names, 0.0)
        for turn in range(turns):
            first = (rep + turn) % len(names)
            for name in names[first:] + names[:first]:
                sample = contenders[name]()
                walls[name] += sample.wall
                cpus[name] += sample.cpu
        for name in names:
            results[name].append(Sample(walls[name], cpus[name]))
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pairwise_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Ratios repetition by repetition (same-moment pairs), not a ratio of medians."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def spread(values: Sequence[float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    """``min-max`` of the repetitions, scaled, for the table's spread column."""
    if len(values) < 2:
        return ""
    return f"{fmt.format(min(values) * scale)}{DASH}{fmt.format(max(values) * scale)}"


def timing_row(
    case: str, name: str, values: Sequence[float], scale: float, unit: str, fmt: str = "{:.0f}"
) -> Row:
    """A measured figure: the median of ``values`` times ``scale``, with their spread."""
    return Row(case, name, median(values) * scale, unit, spread=spread(values, scale, fmt))


def ratio_row(
    case: str,
    name: str,
    ratios: Sequence[float],
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    headline: str = "",
) -> Row:
    """A ratio (median of paired ratios), checked against ``at_most`` or ``at_least``.

    ``headline``: the summary figure this ratio is (see ``benchmarks._summary``).
    """
    value = median(ratios)
    target, met, limit = "", None, None
    if at_most is not None:
        target, met, limit = f"≤ {at_most:g}{TIMES}", value <= at_most, at_most
    elif at_least is not None:
        target, met, limit = f"≥ {at_least:g}{TIMES}", value >= at_least, at_least
    return Row(
        case,
        name,
        value,
        RATIO,
        target=target,
        met=met,
        spread=spread(ratios, fmt="{:.2f}"),
        limit=limit,
        headline=headline,
    )


def skipped(case: str, name: str, unit: str, note: str, target: str = "") -> Row:
    """A row for a case whose feature is not there yet."""
    return Row(case, name, None, unit, target=target, note=note)


@dataclass(frozen=True)
class Sample:
    """Wall-clock seconds and CPU seconds of this process (all its threads) for one batch."""

    wall: float
    cpu: float


class Stopwatch:
    """Started when made; ``stop()`` gives the ``Sample`` since then."""

    __slots__ = ("_cpu", "_wall")

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def stop(self) -> Sample:
        return Sample(time.perf_counter() - self._wall, time.process_time() - self._cpu)


_RUN_TIMEOUT = 120.0


def timed_run(command: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall seconds of one subprocess from spawn to exit; a non-zero exit status is an error.

    What the start-up cases time: a fresh interpreter, its imports, its work and its exit.
    """
    start = time.perf_counter()
    done = subprocess.run(
        list(command),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        shown = " ".join([Path(command[0]).name, *command[1:]])
        raise RuntimeError(f"`{shown}` failed: {done.stderr.strip()[-500:]}")
    return elapsed


def walls(samples: Sequence[Sample]) -> list[float]:
    return [sample.wall for sample in samples]


def cpus(samples: Sequence[Sample]) -> list[float]:
    return [sample.cpu for sample in samples]
