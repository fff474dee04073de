"""Idempotency keys: one row per (scope, endpoint, key), the answer stored once known."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import idempotency_keys as keys
from flowdeck.db.tables import idempotency_runs as key_runs


@dataclass(frozen=True)
class KeyRef:
    """One key: whose, on which endpoint."""

    scope: str
    endpoint: str
    key: str


def run_link_rows(links: Sequence[tuple[KeyRef, str]]) -> tuple[sa.Table, list[dict[str, Any]]]:
    """The rows linking keys to the runs they created, inserted in the runs' own commit."""
    return key_runs, [{"scope": k.scope, "endpoint": k.endpoint, "key": k.key, "run_id": run_id} for k, run_id in links]


async def created_run(conn: AsyncConnection, scope: str, endpoint: str, key: str) -> str | None:
    """The run this key created, if its commit happened."""
    query = sa.select(key_runs.c.run_id).where(
        key_runs.c.scope == scope, key_runs.c.endpoint == endpoint, key_runs.c.key == key
    )
    return (await conn.execute(query)).scalar_one_or_none()


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
    """Forget a key and the run it is linked to (only if created before ``created_before``, when given)."""
    query = sa.delete(keys).where(_match(scope, endpoint, key))
    if created_before is not None:
        query = query.where(keys.c.created_at < created_before)
    if (await conn.execute(query)).rowcount or created_before is None:
        await conn.execute(
            sa.delete(key_runs).where(key_runs.c.scope == scope, key_runs.c.endpoint == endpoint, key_runs.c.key == key)
        )
