"""The overview page's figures: runs per state, runs per day and how long each pipeline's runs
take, over the research groups a caller may see, or one of them (docs/ui.md)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flowdeck.db import overview as overview_rows
from flowdeck.db import run_counts
from flowdeck.domain.principal import Principal
from flowdeck.errors import NotFound
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext

DAYS = 30
DURATION_SAMPLE = 500  # completed runs per group whose durations make the figures (2,000 cost 30-40 ms at 1M runs)


@dataclass(frozen=True)
class Durations:
    """How long a pipeline's completed runs took, start to end, in seconds."""

    pipeline: str
    runs: int
    median: float
    p90: float


@dataclass(frozen=True)
class Overview:
    by_state: dict[str, int]
    per_day: list[tuple[date, int]]
    durations: list[Durations]
    days: int = DAYS
    sample: int = DURATION_SAMPLE


async def overview(
    services: AppContext, principal: Principal, group: str | None, now: datetime | None = None
) -> Overview:
    """The figures over ``group`` (None: every group ``principal`` may see; another group is
    NotFound, as its runs are)."""
    groups = principal.visible_groups()
    if group is not None:
        if not principal.can_see(group):
            raise NotFound(f"research group {group} not found")
        groups = frozenset({group})
    today = (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    async with services.db.read() as conn:
        states = await run_counts.by_state(conn, groups)
        counts = await overview_rows.runs_per_day(conn, groups, days)
        durations = await overview_rows.latest_durations(conn, groups, days[0], DURATION_SAMPLE)
    per_day = [(day.date(), n) for day, n in zip(days, counts, strict=True)]
    return Overview(states, per_day, summarise(durations))


def summarise(durations: list[tuple[str | None, float]]) -> list[Durations]:
    """Median and 90th percentile per pipeline (a raw WES workflow's runs: "(workflow)"), by name."""
    by_pipeline: dict[str, list[float]] = {}
    for name, seconds in durations:
        by_pipeline.setdefault(name or "(workflow)", []).append(seconds)
    return [
        Durations(name, len(values), statistics.median(values), _p90(values))
        for name, values in sorted(by_pipeline.items())
    ]


def _p90(values: list[float]) -> float:
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[-1]
