"""Task rows (WES TaskLog): upserted by the worker, paged by the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import tasks
from flowdeck.domain.runs import TaskInfo


def _values(info: TaskInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "state": info.state.value,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "exit_code": info.exit_code,
        "cmd": info.cmd,
        "stdout_path": info.stdout_path,
        "stderr_path": info.stderr_path,
        "system_logs": list(info.system_logs),
    }


async def sync(conn: AsyncConnection, run_id: str, reported: Sequence[TaskInfo], now: datetime) -> int:
    """Insert new tasks and update changed ones; returns how many rows changed."""
    result = await conn.execute(sa.select(tasks).where(tasks.c.run_id == run_id))
    existing = {row["backend_task_id"]: row for row in result.mappings()}
    changed = 0
    for position, info in enumerate(reported):
        values = _values(info)
        row = existing.get(info.backend_task_id)
        if row is None:
            await conn.execute(
                sa.insert(tasks).values(
                    id=uuid.uuid4().hex,
                    run_id=run_id,
                    backend_task_id=info.backend_task_id,
                    position=len(existing) + position,
                    updated_at=now,
                    **values,
                )
            )
            changed += 1
        elif any(row[key] != value for key, value in values.items()):
            await conn.execute(sa.update(tasks).where(tasks.c.id == row["id"]).values(updated_at=now, **values))
            changed += 1
    return changed


async def page(conn: AsyncConnection, run_id: str, after: int | None, limit: int) -> list[RowMapping]:
    """Tasks of a run in position order, after the given position."""
    query = sa.select(tasks).where(tasks.c.run_id == run_id)
    if after is not None:
        query = query.where(tasks.c.position > after)
    result = await conn.execute(query.order_by(tasks.c.position).limit(limit))
    return list(result.mappings())


async def get(conn: AsyncConnection, run_id: str, task_id: str) -> RowMapping | None:
    result = await conn.execute(sa.select(tasks).where(tasks.c.run_id == run_id, tasks.c.id == task_id))
    return result.mappings().first()
