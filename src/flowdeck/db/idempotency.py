"""Idempotency keys: one row per (scope, endpoint, key), the answer stored once known."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import idempotency_keys as keys


def _match(scope: str, endpoint: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(keys.c.scope == scope, keys.c.endpoint == endpoint, keys.c.key == key)


async def try_insert(conn: AsyncConnection, scope: str, endpoint: str, key: str, body_hash: str, now: datetime) -> bool:
    """Insert the key; False if it already exists (the primary key decides between racers)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                sa.insert(keys),
                {
                    "scope": scope,
                    "endpoint": endpoint,
                    "key": key,
                    "body_hash": body_hash,
                    "created_at": now,
                },
            )
    except IntegrityError:
        return False
    return True


async def get(conn: AsyncConnection, scope: str, endpoint: str, key: str) -> RowMapping | None:
    result = await conn.execute(sa.select(keys).where(_match(scope, endpoint, key)))
    return result.mappings().first()


async def store_answer(conn: AsyncConnection, scope: str, endpoint: str, key: str, status: int, response: Any) -> None:
    await conn.execute(
        sa.update(keys).where(_match(scope, endpoint, key)).values(status_code=status, response=response)
    )


async def delete(
    conn: AsyncConnection, scope: str, endpoint: str, key: str, created_before: datetime | None = None
) -> None:
    """Forget a key (only if created before ``created_before``, when given)."""
    query = sa.delete(keys).where(_match(scope, endpoint, key))
    if created_before is not None:
        query = query.where(keys.c.created_at < created_before)
    await conn.execute(query)
