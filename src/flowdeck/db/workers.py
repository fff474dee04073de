"""Worker registrations and heartbeats."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import workers


async def register(conn: AsyncConnection, worker_id: str, hostname: str, pid: int, version: str, now: datetime) -> None:
    await conn.execute(
        sa.insert(workers).values(
            id=worker_id, hostname=hostname, pid=pid, version=version, started_at=now, heartbeat_at=now
        )
    )


async def heartbeat(conn: AsyncConnection, worker_id: str, now: datetime) -> None:
    await conn.execute(sa.update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now))


async def unregister(conn: AsyncConnection, worker_id: str) -> None:
    await conn.execute(sa.delete(workers).where(workers.c.id == worker_id))


async def latest_heartbeat(conn: AsyncConnection) -> datetime | None:
    """The newest heartbeat of any worker (ordering keeps the column's type)."""
    query = sa.select(workers.c.heartbeat_at).order_by(workers.c.heartbeat_at.desc()).limit(1)
    value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return value
