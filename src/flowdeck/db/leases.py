"""Leased claims on rows (runs, requests): the one place the claim is written.

The claim is one statement, so on SQLite (one writer at a time) it is atomic; on
PostgreSQL ``FOR UPDATE SKIP LOCKED`` keeps concurrent workers from ever
claiming the same row. MariaDB (>= 10.6) locks the same way, but updates no
subquery of the table it updates and returns nothing from an UPDATE: it locks the
ids first, then updates and reads them. A row is free when no lease holds it or its lease expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression


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
    values = {"lease_owner": owner, "lease_expires_at": now + lease}
    if conn.dialect.name == "mysql":
        ordered = sa.select(table.c.id).where(free, *conditions).order_by(*map(_mysql_order, order_by)).limit(limit)
        return await _claim_mysql(conn, table, ordered.with_for_update(skip_locked=True), values)
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    statement = sa.update(table).where(table.c.id.in_(candidates.scalar_subquery())).values(values).returning(*table.c)
    return list((await conn.execute(statement)).mappings())


async def _claim_mysql(
    conn: AsyncConnection, table: sa.Table, candidates: sa.Select[Any], values: dict[str, Any]
) -> list[RowMapping]:
    ids = list((await conn.execute(candidates)).scalars())
    if not ids:
        return []
    await conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(values))
    claimed = {row["id"]: row for row in (await conn.execute(sa.select(table).where(table.c.id.in_(ids)))).mappings()}
    return [claimed[id_] for id_ in ids]


def _mysql_order(clause: Any) -> Any:
    """MySQL has no NULLS FIRST; its ascending order puts NULL first already."""
    if isinstance(clause, UnaryExpression) and clause.modifier is operators.nulls_first_op:
        inner = clause.element
        if isinstance(inner, UnaryExpression) and inner.modifier is operators.asc_op:
            return inner
    return clause
