"""What fair-share dispatch reads: the dispatch lock, the groups with queued runs and their
executing runs (from the kept counts), and the executing runs of a few engines per group (from an
index). A run with no research group counts as the group ``''``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import dispatch_locks, run_state_counts, runs
from flowdeck.domain.states import ENGINE_HELD, State

_LOCK = sa.select(dispatch_locks.c.name).where(dispatch_locks.c.name == "dispatch").with_for_update()
_HELD = sorted(s.value for s in ENGINE_HELD)


@dataclass(frozen=True)
class Groups:
    """Groups with queued runs (by name), and runs holding an engine slot per group, all engines."""

    waiting: list[str]
    executing: dict[str, int]


async def lock(conn: AsyncConnection) -> None:
    """Hold the dispatch lock until ``conn``'s transaction ends: one worker at a time counts the
    executing runs and claims. SQLite needs none (its write transaction is the one writer)."""
    if conn.dialect.name == "sqlite":
        return
    if (await conn.execute(_LOCK)).first() is None:
        # Migration 0008 writes the row; a schema copied without rows (a MariaDB test template, a
        # schema-only restore) gets it here. Under READ COMMITTED a missing row locks nothing.
        row = {"name": "dispatch"}
        if conn.dialect.name == "postgresql":
            await conn.execute(postgresql.insert(dispatch_locks).values(row).on_conflict_do_nothing())
        else:
            await conn.execute(sa.insert(dispatch_locks).values(row).prefix_with("IGNORE"))
        await conn.execute(_LOCK)


async def groups(conn: AsyncConnection) -> Groups:
    """Read from the kept counts (migration 0004), never the runs table."""
    counts = run_state_counts.c
    query = (
        sa.select(counts.research_group, counts.state, sa.func.sum(counts.n))
        .where(counts.state.in_([State.QUEUED.value, *_HELD]))
        .group_by(counts.research_group, counts.state)
    )
    waiting: set[str] = set()
    executing: dict[str, int] = {}
    for group, state, n in (await conn.execute(query)).all():
        if n and state == State.QUEUED.value:
            waiting.add(group)
        elif n:
            executing[group] = executing.get(group, 0) + int(n)
    return Groups(sorted(waiting), executing)


async def executing_on(conn: AsyncConnection, backends: Sequence[str]) -> dict[str, int]:
    """Runs holding a slot of these engines, per group, read from an index only (the local
    engines' few, not every remote engine's)."""
    group = sa.func.coalesce(runs.c.research_group, "")
    query = (
        sa.select(group, sa.func.count())
        .where(runs.c.state.in_(_HELD), runs.c.backend.in_(list(backends)))
        .group_by(group)
    )
    return {g: int(n) for g, n in (await conn.execute(query)).all()}
