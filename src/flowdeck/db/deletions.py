"""Removing a run's rows, and the audit rows of removed runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.runs import record_of
from flowdeck.db.tables import events, idempotency_runs, run_attachments, run_deletions, run_tags, runs, tasks
from flowdeck.domain.runs import RunRecord

# Deleted explicitly rather than trusted to ON DELETE CASCADE: SQLite enforces it only with
# foreign_keys=ON, and a connection opened by another tool may not have it.
_CHILDREN = (tasks, run_tags, run_attachments, events, idempotency_runs)


class Changed(Exception):
    """The run changed or went between reading and deleting it: the caller's transaction rolls back."""


async def remove_run(conn: AsyncConnection, run: RunRecord, audit: dict[str, Any]) -> None:
    """Delete the run's rows and write its audit row, if it is still as read (its
    ``state_version``); :class:`Changed` otherwise (another delete or a purge got there first)."""
    await conn.execute(sa.update(runs).where(runs.c.rerun_of == run.id).values(rerun_of=None))
    for table in _CHILDREN:
        await conn.execute(sa.delete(table).where(table.c.run_id == run.id))
    gone = await conn.execute(sa.delete(runs).where(runs.c.id == run.id, runs.c.state_version == run.state_version))
    if gone.rowcount != 1:
        raise Changed(run.id)
    await conn.execute(sa.insert(run_deletions).values(**audit))


async def ended_before(conn: AsyncConnection, states: Sequence[str], cutoff: datetime, limit: int) -> list[RunRecord]:
    """Runs in ``states`` that ended before ``cutoff``, oldest first."""
    query = (
        sa.select(runs).where(runs.c.state.in_(states), runs.c.end_time < cutoff).order_by(runs.c.end_time).limit(limit)
    )
    return [record_of(row) for row in (await conn.execute(query)).mappings()]


async def audit(conn: AsyncConnection, run_id: str) -> list[RowMapping]:
    """The audit rows of a removed run."""
    query = sa.select(run_deletions).where(run_deletions.c.run_id == run_id).order_by(run_deletions.c.id)
    return list((await conn.execute(query)).mappings().all())


async def existing(conn: AsyncConnection, run_ids: Sequence[str]) -> set[str]:
    """Which of ``run_ids`` still have a row."""
    if not run_ids:
        return set()
    rows = await conn.execute(sa.select(runs.c.id).where(runs.c.id.in_(list(run_ids))))
    return {row[0] for row in rows}


async def deleted_ids(conn: AsyncConnection, run_ids: Sequence[str]) -> list[str]:
    """Which of ``run_ids`` were deleted (have an audit row)."""
    if not run_ids:
        return []
    rows = await conn.execute(
        sa.select(run_deletions.c.run_id).where(run_deletions.c.run_id.in_(list(run_ids))).distinct()
    )
    return [row[0] for row in rows]
