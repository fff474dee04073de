"""Runs per (research group, pipeline, state) and bytes in storage per group, read from the deltas
the triggers on ``runs`` append (migrations 0004 and 0012), never by reading the runs table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import group_stored_bytes, run_state_counts

_counts = run_state_counts.c
_bytes = group_stored_bytes.c
# Two workers' compactions would only wait on each other's row locks: one at a time is enough.
_COMPACT_LOCK = 0x666C6F77636E74  # "flowcnt"


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


async def group_bytes(conn: AsyncConnection, group: str) -> int:
    """The bytes ``group`` holds in storage: the sum of its kept deltas (migration 0012), one row
    once folded, read through the group's index."""
    query = sa.select(sa.func.coalesce(sa.func.sum(_bytes.bytes), 0)).where(_bytes.research_group == group)
    return int((await conn.execute(query)).scalar_one())


async def compact(conn: AsyncConnection, *, postgres: bool) -> bool:
    """Fold the deltas into one row per (group, pipeline, state), and the stored bytes into one row
    per group, inside ``conn``'s write transaction. False when another compaction holds the lock
    (PostgreSQL)."""
    if postgres:
        locked = await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_COMPACT_LOCK)))
        if not locked.scalar_one():
            return False
    for table, value in ((run_state_counts, "n"), (group_stored_bytes, "bytes")):
        if conn.dialect.name == "mysql":
            await _compact_mysql(conn, table, value)
        elif postgres:
            await conn.execute(_compact_postgres(table, value))
        else:
            await _compact_sqlite(conn, table, value)
    return True


def _keys(table: sa.Table, value: str) -> list[sa.Column[Any]]:
    return [c for c in table.c if c.name not in ("id", value)]


def _compact_postgres(table: sa.Table, value: str) -> sa.TextClause:
    """One statement, so exactly the deltas it deletes are the ones it sums (a delta committed
    meanwhile is neither deleted nor summed, and is folded next time)."""
    keys = ", ".join(c.name for c in _keys(table, value))
    return sa.text(
        f"WITH gone AS (DELETE FROM {table.name} RETURNING {keys}, {value}) "
        f"INSERT INTO {table.name} ({keys}, {value}) SELECT {keys}, sum({value}) FROM gone "
        f"GROUP BY {keys} HAVING sum({value}) <> 0"
    )


async def _compact_sqlite(conn: AsyncConnection, table: sa.Table, value: str) -> None:
    """The write transaction holds the database's one write lock, so nothing is appended between
    the sum and the delete."""
    keys, n = _keys(table, value), table.c[value]
    sums = (
        await conn.execute(sa.select(*keys, sa.func.sum(n).label(value)).group_by(*keys).having(sa.func.sum(n) != 0))
    ).all()
    await conn.execute(sa.delete(table))
    if sums:
        await conn.execute(sa.insert(table), [dict(row._mapping) for row in sums])


async def _compact_mysql(conn: AsyncConnection, table: sa.Table, value: str) -> None:
    """MariaDB: lock the deltas there are (FOR UPDATE; under READ COMMITTED no gap lock, so appends
    go on), sum them and delete exactly those ids. A delta appended meanwhile is folded next time;
    a second compaction waits for the first's locks and then sees only what is left."""
    keys = _keys(table, value)
    found = (
        await conn.execute(sa.select(table.c.id, *keys, table.c[value]).order_by(table.c.id).with_for_update())
    ).all()
    sums: dict[tuple[Any, ...], int] = {}
    for row in found:
        key = tuple(row[1:-1])
        sums[key] = sums.get(key, 0) + row[-1]
    ids = [row.id for row in found]
    for start in range(0, len(ids), 1000):
        await conn.execute(sa.delete(table).where(table.c.id.in_(ids[start : start + 1000])))
    names = [c.name for c in keys]
    folded = [{**dict(zip(names, key, strict=True)), value: n} for key, n in sums.items() if n != 0]
    if folded:
        await conn.execute(sa.insert(table), folded)
