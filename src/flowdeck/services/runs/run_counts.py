"""Runs per state, as service-info, /metrics and list totals show them, and the upkeep of the
kept counts (db.run_counts)."""

from __future__ import annotations

from flowdeck.db import run_counts
from flowdeck.domain.principal import Principal
from flowdeck.services.core.context import AppContext


async def by_state(services: AppContext, principal: Principal | None) -> dict[str, int]:
    """Runs per state that ``principal`` may see (None: every group, for operators' metrics)."""
    groups = None if principal is None else principal.visible_groups()
    async with services.db.read() as conn:
        return await run_counts.by_state(conn, groups)


async def compact(services: AppContext) -> bool:
    """Fold the appended count deltas into one row per (group, state), so a read sums few rows."""
    async with services.db.write() as conn:
        return await run_counts.compact(conn, postgres=services.db.is_postgres)
