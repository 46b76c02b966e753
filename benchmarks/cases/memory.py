"""Case 6: memory of a process holding 10,000 cached validations.

Two fresh processes run the same script (``_memory_child``): the baseline validates one token,
the other validates 10,000 distinct tokens through ``HubAuth.whoami`` with a ``MemoryCache``
against FakeHub (realistic answers: a user, an email, one organisation, a named write token),
100 at a time. Both import the same modules and open the same session, so the difference is
what the validations cost: the peak resident set (VmHWM) of each, and what stays resident once
the garbage collector has run. Baseline and run alternate, and each figure is a median.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._common import BenchContext, Row, bench_env, median, skipped

CASE = "6 memory"
_MIB = 1024 * 1024
_TIMEOUT = 120.0


def _child(hub_url: str, tokens_file: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cases._memory_child", hub_url, str(tokens_file)],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=bench_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the memory child failed: {done.stderr.strip()[-1000:]}")
    result: dict[str, int] = json.loads(done.stdout)
    return result


def run(ctx: BenchContext) -> list[Row]:
    try:
        import hub_auth._cache.memory  # noqa: F401
    except ImportError as exc:
        note = f"not available yet (hub_auth._cache.memory: {exc})"
        return [skipped(CASE, "10,000 cached validations", "MiB", note, target="< 20 MiB")]

    count = ctx.sizes.memory_entries
    tokens = list(ctx.tokens[:count])
    if len(tokens) < count:
        raise RuntimeError(f"FakeHub has {len(tokens)} tokens, case 6 needs {count}")
    with tempfile.TemporaryDirectory(prefix="hub-auth-bench-mem-") as tmp:
        one, many = Path(tmp) / "one.txt", Path(tmp) / "many.txt"
        one.write_text(tokens[0] + "\n", encoding="utf-8")
        many.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        runs = max(1, min(ctx.sizes.reps, 3))
        baselines, fills = [], []
        for _ in range(runs):
            baselines.append(_child(ctx.hub_url, one))
            fills.append(_child(ctx.hub_url, many))

    for result in fills:
        if result["entries"] != count or result["validated"] != count:
            raise RuntimeError(f"expected {count} cached validations, got {result}")
    peak = [(f["peak"] - b["peak"]) / _MIB for f, b in zip(fills, baselines, strict=True)]
    retained = [(f["rss"] - b["rss"]) / _MIB for f, b in zip(fills, baselines, strict=True)]
    label = f"{count:,} cached validations"
    return [
        Row(
            CASE,
            "baseline process (HubAuth + MemoryCache, 1 validation), resident",
            median([b["rss"] / _MIB for b in baselines]),
            "MiB",
        ),
        Row(
            CASE,
            f"{label}: peak above baseline",
            median(peak),
            "MiB",
            target="< 20 MiB",
            met=median(peak) < 20,
        ),
        Row(CASE, f"{label}: resident above baseline after gc", median(retained), "MiB"),
        Row(
            CASE,
            "resident bytes per cached validation",
            median(retained) * _MIB / max(count - 1, 1),
            "B",
            # With a few entries the figure is all allocator granularity, not the entries.
            note="" if count >= 1000 else "too few entries to mean anything",
        ),
    ]
