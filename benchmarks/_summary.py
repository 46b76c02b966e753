"""The summary table: the figures issues 23 and 24 set targets for, picked from one run's rows.

A case marks a row as one of these figures (``Row.headline``); the summary lists every figure
in the order below, with the row's target (which stays written once, in the case) and whether
this run met it. A figure no row carries (its case was skipped, failed or not run) is listed
as not measured, so a missing figure shows instead of vanishing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._common import Row

__all__ = ["HEADLINES", "Figure", "Headline", "SummaryLine", "summary"]


class Figure(enum.StrEnum):
    WHOAMI_CPU = "whoami-cpu"
    FACADE_VS_AWAIT = "facade-vs-await"
    FACADE_VS_HF = "facade-vs-hf"
    CLI_TOKEN = "cli-token"
    CLI_LIST = "cli-list"
    CLI_SWITCH = "cli-switch"
    CLI_LOGOUT = "cli-logout"
    BEARER_UVICORN = "bearer-uvicorn"
    BEARER_IN_PROCESS = "bearer-in-process"
    BEARER_EXTRA_US = "bearer-extra-us"
    CLI_WHOAMI = "cli-whoami"
    IMPORT_SYNC = "import-sync"
    IMPORT_HUB_AUTH = "import-hub-auth"


@dataclass(frozen=True)
class Headline:
    figure: Figure
    label: str
    issue: int


HEADLINES: tuple[Headline, ...] = (
    Headline(Figure.WHOAMI_CPU, "client CPU per whoami, hub_auth ÷ raw aiohttp", 24),
    Headline(Figure.FACADE_VS_AWAIT, "facade call ÷ awaited call (same client), wall", 24),
    Headline(Figure.FACADE_VS_HF, "facade call ÷ huggingface_hub's blocking whoami, wall", 24),
    Headline(Figure.CLI_TOKEN, "`hub-auth token` ÷ `hf auth token`, wall", 24),
    Headline(Figure.CLI_LIST, "`hub-auth list` ÷ `hf auth list`, wall", 24),
    Headline(Figure.CLI_SWITCH, "`hub-auth switch` ÷ `hf auth switch`, wall", 24),
    Headline(Figure.CLI_LOGOUT, "`hub-auth logout` ÷ `hf auth logout`, wall", 24),
    Headline(
        Figure.BEARER_UVICORN,
        "HubBearer ÷ HTTPBearer, requests/s, warm cache, uvicorn (load: aiohttp client)",
        24,
    ),
    Headline(
        Figure.BEARER_IN_PROCESS,
        "in process (ASGI calls): HTTPBearer CPU ÷ HubBearer CPU per request",
        24,
    ),
    Headline(
        Figure.BEARER_EXTRA_US,
        "in process (ASGI calls): HubBearer CPU minus HTTPBearer CPU per request",
        24,
    ),
    Headline(Figure.CLI_WHOAMI, "`hub-auth whoami` ÷ `hf auth whoami`, wall", 23),
    Headline(
        Figure.IMPORT_SYNC,
        "`import hub_auth.sync` ÷ `from huggingface_hub import whoami`, fresh interpreter",
        23,
    ),
    Headline(
        Figure.IMPORT_HUB_AUTH,
        "`from hub_auth import HubAuth` ÷ `from huggingface_hub import whoami`, fresh interpreter",
        23,
    ),
)


@dataclass(frozen=True)
class SummaryLine:
    """One figure of the summary; ``row`` is ``None`` when this run did not measure it."""

    headline: Headline
    row: Row | None

    @property
    def result(self) -> str:
        if self.row is None:
            return "not measured"
        return self.row.status or "no target"


def summary(rows: Sequence[Row]) -> list[SummaryLine]:
    """Every headline figure, in order, with the row of this run that measured it."""
    found: dict[str, Row] = {}
    for row in rows:
        if row.headline:
            if row.headline in found:
                raise ValueError(f"two rows claim the summary figure {row.headline!r}")
            if row.headline not in Figure.__members__.values():
                raise ValueError(f"unknown summary figure {row.headline!r}")
            found[row.headline] = row
    return [SummaryLine(headline, found.get(headline.figure)) for headline in HEADLINES]
