"""Leased claims on rows (runs, requests): the one place the claim is written.

The claim is one statement, so on SQLite (one writer at a time) it is atomic; on
PostgreSQL ``FOR UPDATE SKIP LOCKED`` keeps concurrent workers from ever
claiming the same row. A row is free when no lease holds it or its lease expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection


async def claim(
    conn: AsyncConnection,
    table: sa.Table,
    conditions: Sequence[sa.ColumnElement[bool]],
    order_by: Sequence[Any],
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    postgres: bool,
) -> list[RowMapping]:
    """Lease up to ``limit`` free rows of ``table`` matching ``conditions`` to ``owner``."""
    free = sa.or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at < now)
    candidates = sa.select(table.c.id).where(free, *conditions).order_by(*order_by).limit(limit)
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        sa.update(table)
        .where(table.c.id.in_(candidates.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*table.c)
    )
    return list((await conn.execute(statement)).mappings())
