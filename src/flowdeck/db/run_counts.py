"""Runs per (research group, pipeline, state), read from the deltas the triggers on ``runs`` append
(migration 0004), never by counting the runs table."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import run_state_counts

_counts = run_state_counts.c
# Two workers' compactions would only wait on each other's row locks: one at a time is enough.
_COMPACT_LOCK = 0x666C6F77636E74  # "flowcnt"
# PostgreSQL: one statement, so exactly the deltas it deletes are the ones it sums (a delta
# committed meanwhile is neither deleted nor summed, and is folded next time).
_COMPACT_POSTGRES = sa.text(
    "WITH gone AS (DELETE FROM run_state_counts RETURNING research_group, pipeline_name, state, n) "
    "INSERT INTO run_state_counts (research_group, pipeline_name, state, n) "
    "SELECT research_group, pipeline_name, state, sum(n) FROM gone "
    "GROUP BY research_group, pipeline_name, state HAVING sum(n) <> 0"
)


async def by_state(
    conn: AsyncConnection, groups: frozenset[str] | None, pipeline_name: str | None = None
) -> dict[str, int]:
    """Runs per state over these groups (None: every group), of one pipeline if named; states
    with no runs are left out."""
    query = sa.select(_counts.state, sa.func.sum(_counts.n)).group_by(_counts.state)
    if groups is not None:
        query = query.where(_counts.research_group.in_(sorted(groups)))
    if pipeline_name is not None:
        query = query.where(_counts.pipeline_name == pipeline_name)
    result = await conn.execute(query)
    return {state: int(n) for state, n in result.all() if n}


async def rows(conn: AsyncConnection) -> int:
    """How many delta rows are stored (what a read sums)."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(run_state_counts))).scalar_one())


async def compact(conn: AsyncConnection, *, postgres: bool) -> bool:
    """Fold the deltas into one row per (group, pipeline, state), inside ``conn``'s write transaction.
    False when another compaction holds the lock (PostgreSQL)."""
    if conn.dialect.name == "mysql":
        return await _compact_mysql(conn)
    if postgres:
        locked = await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_COMPACT_LOCK)))
        if not locked.scalar_one():
            return False
        await conn.execute(_COMPACT_POSTGRES)
        return True
    # SQLite: the write transaction holds the database's one write lock, so nothing is appended
    # between the sum and the delete.
    key = (_counts.research_group, _counts.pipeline_name, _counts.state)
    sums = (
        await conn.execute(
            sa.select(*key, sa.func.sum(_counts.n).label("n")).group_by(*key).having(sa.func.sum(_counts.n) != 0)
        )
    ).all()
    await conn.execute(sa.delete(run_state_counts))
    if sums:
        await conn.execute(sa.insert(run_state_counts), [dict(row._mapping) for row in sums])
    return True


async def _compact_mysql(conn: AsyncConnection) -> bool:
    """MariaDB: lock the deltas there are (FOR UPDATE; under READ COMMITTED no gap lock, so appends
    go on), sum them and delete exactly those ids. A delta appended meanwhile is folded next time;
    a second compaction waits for the first's locks and then sees only what is left."""
    locked = sa.select(_counts.id, _counts.research_group, _counts.pipeline_name, _counts.state, _counts.n)
    found = (await conn.execute(locked.order_by(_counts.id).with_for_update())).all()
    sums: dict[tuple[str, str, str], int] = {}
    for _id, group, pipeline, state, n in found:
        sums[(group, pipeline, state)] = sums.get((group, pipeline, state), 0) + n
    ids = [row.id for row in found]
    for start in range(0, len(ids), 1000):
        await conn.execute(sa.delete(run_state_counts).where(_counts.id.in_(ids[start : start + 1000])))
    folded = [{"research_group": g, "pipeline_name": p, "state": s, "n": n} for (g, p, s), n in sums.items() if n != 0]
    if folded:
        await conn.execute(sa.insert(run_state_counts), folded)
    return True
