"""The deliveries outbox (revision 0006): rows written with their events, sent by the worker.

A row is ``pending`` until it is ``delivered`` or, after its last attempt, ``failed``. Rows of
one ``queue`` (an endpoint and a run, say) go out one at a time in id order: only a queue's
oldest pending row is ever due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import deliveries, events

_INSERT = sa.insert(deliveries)
_older = deliveries.alias("older")


async def insert_many(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_INSERT, list(rows))


async def heads_due(conn: AsyncConnection, now: datetime, limit: int) -> list[RowMapping]:
    """The oldest pending row of each queue, when it is due and nobody holds it."""
    waiting_before = sa.exists().where(
        _older.c.state == "pending", _older.c.queue == deliveries.c.queue, _older.c.id < deliveries.c.id
    )
    query = (
        sa.select(deliveries)
        .where(
            deliveries.c.state == "pending",
            deliveries.c.next_attempt_at <= now,
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            ~waiting_before,
        )
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).mappings())


async def claim(conn: AsyncConnection, delivery_id: int, now: datetime, until: datetime) -> bool:
    """Hold a pending row until ``until`` (compare-and-set: False if another worker holds it)."""
    free = sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
    result = await conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == "pending", free)
        .values(lease_until=until)
    )
    return result.rowcount == 1


async def record(conn: AsyncConnection, delivery_id: int, values: dict[str, Any]) -> None:
    """An attempt's outcome (state, attempts, next_attempt_at, last_status, last_error, …); frees the row."""
    await conn.execute(sa.update(deliveries).where(deliveries.c.id == delivery_id).values(**values, lease_until=None))


async def get(conn: AsyncConnection, delivery_id: int) -> RowMapping | None:
    return (await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))).mappings().first()


async def for_webhook(
    conn: AsyncConnection, webhook_id: str, limit: int, before_id: int | None = None
) -> list[RowMapping]:
    """An endpoint's deliveries, newest first."""
    query = sa.select(deliveries).where(deliveries.c.webhook_id == webhook_id)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    return list((await conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit))).mappings())


async def redeliver(conn: AsyncConnection, delivery_id: int, now: datetime) -> None:
    """Send the row again, at once, with the same message id (receivers deduplicate on it)."""
    await conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, delivered_at=None)
    )


async def prune(conn: AsyncConnection, created_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished rows (delivered or failed) created before ``created_before``,
    oldest first; how many went. Ids are read first and deleted by id: MariaDB refuses a LIMIT in an
    ``IN`` subquery, and walking the primary key from the oldest row stops after ``limit`` matches."""
    done = deliveries.c.state.in_(("delivered", "failed"))
    query = sa.select(deliveries.c.id).where(done, deliveries.c.created_at < created_before)
    ids = list((await conn.execute(query.order_by(deliveries.c.id).limit(limit))).scalars())
    if ids:
        await conn.execute(sa.delete(deliveries).where(deliveries.c.id.in_(ids), done))
    return len(ids)


async def creation_event_id(conn: AsyncConnection, run_id: str) -> int | None:
    """The id of a run's first event (written with the run in a batch, so unknown when queued)."""
    query = sa.select(sa.func.min(events.c.id)).where(events.c.run_id == run_id, events.c.from_state.is_(None))
    value = (await conn.execute(query)).scalar_one_or_none()
    return None if value is None else int(value)
