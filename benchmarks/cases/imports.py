"""Case 7: import time, a fresh interpreter for each import, hub_auth against huggingface_hub.

Each figure is the wall time of ``python -c "<import>"`` in a new process, from spawn to exit
(``time.perf_counter`` around the subprocess): what a script pays before its first line does
anything. The commands run in interleaved rounds (each round runs each once, in rotating
order); each ratio is the median of the rounds' ratios. The environment has no ``HF_*``
variable; bytecode caches are written and used, as after a ``pip install``, and one untimed
run of each command warms them and the page cache. ``python -c pass`` is the interpreter's
own floor; the rows "above the interpreter" subtract it round by round. Targets (issue 23):
``import hub_auth.sync`` and ``from hub_auth import HubAuth`` no slower than ``from
huggingface_hub import whoami`` (at most 1.0 times its wall time).
"""

from __future__ import annotations

import functools
import sys

from benchmarks._common import (
    BenchContext,
    Row,
    bench_env,
    interleaved,
    pairwise_ratio,
    ratio_row,
    timed_run,
    timing_row,
)
from benchmarks._summary import Figure

CASE = "7 import time"
TARGET = 1.0  # hub_auth's imports no slower than huggingface_hub's (issue 23)
_FLOOR = "pass"
_THEIRS = "from huggingface_hub import whoami"
_OURS = {
    "import hub_auth.sync": Figure.IMPORT_SYNC,
    "from hub_auth import HubAuth": Figure.IMPORT_HUB_AUTH,
}


def run(ctx: BenchContext) -> list[Row]:
    env = bench_env()
    statements = [_FLOOR, *_OURS, _THEIRS]
    commands = {statement: [sys.executable, "-c", statement] for statement in statements}
    for command in commands.values():  # warm the page cache and the .pyc files
        timed_run(command, env)
    timings = interleaved(
        ctx.sizes.import_runs,
        {name: functools.partial(timed_run, command, env) for name, command in commands.items()},
    )
    floor = timings[_FLOOR]

    def label(statement: str) -> str:
        return "python -c pass" if statement == _FLOOR else f"python -c '{statement}'"

    rows = [timing_row(CASE, label(name), values, 1e3, "ms") for name, values in timings.items()]
    above = {
        statement: [wall - start for wall, start in zip(timings[statement], floor, strict=True)]
        for statement in [*_OURS, _THEIRS]
    }
    rows += [
        timing_row(CASE, f"{statement}: above the interpreter", values, 1e3, "ms")
        for statement, values in above.items()
    ]
    for statement, figure in _OURS.items():
        rows.append(
            ratio_row(
                CASE,
                f"{statement} ÷ {_THEIRS}",
                pairwise_ratio(timings[statement], timings[_THEIRS]),
                at_most=TARGET,
                headline=figure,
            )
        )
    rows += [
        ratio_row(
            CASE,
            f"above the interpreter: {statement} ÷ {_THEIRS}",
            pairwise_ratio(above[statement], above[_THEIRS]),
        )
        for statement in _OURS
    ]
    return rows
