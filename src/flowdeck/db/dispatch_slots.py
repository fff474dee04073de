"""What fair-share dispatch reads: the dispatch lock, executing runs per (group, backend) and the
groups with queued runs. A run with no research group counts as the group ``''``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import dispatch_locks, run_state_counts, runs
from flowdeck.domain.states import ENGINE_HELD, State

_LOCK = sa.select(dispatch_locks.c.name).where(dispatch_locks.c.name == "dispatch").with_for_update()


async def lock(conn: AsyncConnection) -> None:
    """Hold the dispatch lock until ``conn``'s transaction ends: one worker at a time counts the
    executing runs and claims. SQLite needs none (its write transaction is the one writer)."""
    if conn.dialect.name != "sqlite":
        await conn.execute(_LOCK)


async def executing(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Runs holding an engine slot, per (research group, backend); read from an index only."""
    group = sa.func.coalesce(runs.c.research_group, "")
    query = (
        sa.select(group, runs.c.backend, sa.func.count())
        .where(runs.c.state.in_(sorted(s.value for s in ENGINE_HELD)))
        .group_by(group, runs.c.backend)
    )
    return {(g, backend): int(n) for g, backend, n in (await conn.execute(query)).all()}


async def waiting_groups(conn: AsyncConnection) -> list[str]:
    """Groups with queued runs, from the kept counts (migration 0004), never the runs table."""
    counts = run_state_counts.c
    query = (
        sa.select(counts.research_group)
        .where(counts.state == State.QUEUED.value)
        .group_by(counts.research_group)
        .having(sa.func.sum(counts.n) > 0)
    )
    return sorted((await conn.execute(query)).scalars())
