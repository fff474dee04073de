"""The audit trail: one row per state change of a run or request."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import events

# One instance: SQLAlchemy memoizes its cache key (see db.runs.insert).
_INSERT = sa.insert(events)


async def add(
    conn: AsyncConnection,
    *,
    at: datetime,
    kind: str,
    run_id: str | None = None,
    request_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    # Values as parameters, not .values(): the statement stays one cached compilation.
    await conn.execute(
        _INSERT,
        {
            "run_id": run_id,
            "request_id": request_id,
            "at": at,
            "kind": kind,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason,
            "actor": actor,
        },
    )


async def for_run(conn: AsyncConnection, run_id: str, limit: int = 1000) -> list[RowMapping]:
    query = sa.select(events).where(events.c.run_id == run_id).order_by(events.c.id).limit(limit)
    return list((await conn.execute(query)).mappings())


async def for_request(conn: AsyncConnection, request_id: str, limit: int = 1000) -> list[RowMapping]:
    query = sa.select(events).where(events.c.request_id == request_id).order_by(events.c.id).limit(limit)
    return list((await conn.execute(query)).mappings())
