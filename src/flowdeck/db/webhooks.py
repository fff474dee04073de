"""Webhook endpoints and e-mail notification preferences (revision 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.engine import PointRead
from flowdeck.db.tables import notification_preferences, requests, runs, webhooks

# What the outbox matches an event against, read once per event (one small indexed table).
_MATCHING = sa.select(
    webhooks.c.id,
    webhooks.c.event_types,
    webhooks.c.research_group,
    webhooks.c.pipeline_name,
    webhooks.c.run_id,
    webhooks.c.request_id,
)


# Whether any endpoint exists: the new-run batch's check, a ~5 µs point read on SQLite.
# (No LIMIT: a point read takes no literal binds; min() of the key reads one index entry.)
ANY = PointRead(sa.select(sa.func.min(webhooks.c.id).label("id")))


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(sa.insert(webhooks), values)


async def get(conn: AsyncConnection, webhook_id: str) -> RowMapping | None:
    return (await conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id))).mappings().first()


async def by_ids(conn: AsyncConnection, ids: set[str]) -> dict[str, RowMapping]:
    """These endpoints (those that still exist), by id."""
    if not ids:
        return {}
    rows = (await conn.execute(sa.select(webhooks).where(webhooks.c.id.in_(sorted(ids))))).mappings()
    return {row["id"]: row for row in rows}


async def listed(conn: AsyncConnection, groups: frozenset[str] | None, limit: int = 1000) -> list[RowMapping]:
    """Endpoints of these groups (None: all, service-wide ones included), oldest first."""
    query = sa.select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id).limit(limit)
    if groups is not None:
        query = query.where(webhooks.c.research_group.in_(sorted(groups)))
    return list((await conn.execute(query)).mappings())


async def delete(conn: AsyncConnection, webhook_id: str) -> None:
    await conn.execute(sa.delete(webhooks).where(webhooks.c.id == webhook_id))


async def matching_candidates(conn: AsyncConnection) -> list[RowMapping]:
    """Every endpoint's filters: an empty list (no endpoint) is the common, cheap case."""
    return list((await conn.execute(_MATCHING)).mappings())


async def preferences(conn: AsyncConnection, username: str) -> RowMapping | None:
    query = sa.select(notification_preferences).where(notification_preferences.c.username == username)
    return (await conn.execute(query)).mappings().first()


async def set_preferences(conn: AsyncConnection, username: str, values: dict[str, Any], now: datetime) -> None:
    """Insert or replace ``username``'s preferences (delete then insert: one statement on every database)."""
    table = notification_preferences
    await conn.execute(sa.delete(table).where(table.c.username == username))
    await conn.execute(sa.insert(table), {**values, "username": username, "updated_at": now})


async def delete_preferences(conn: AsyncConnection, username: str) -> None:
    table = notification_preferences
    await conn.execute(sa.delete(table).where(table.c.username == username))


_PREFS = [
    notification_preferences.c.email,
    notification_preferences.c.on_completion,
    notification_preferences.c.on_failure,
    notification_preferences.c.request_summary,
]


async def run_subject(conn: AsyncConnection, run_id: str) -> RowMapping | None:
    """What a run's event is matched on, with its owner's e-mail preferences (None when they have none)."""
    query = sa.select(
        runs.c.research_group, runs.c.pipeline_name, runs.c.request_id, runs.c.owner, *_PREFS
    ).select_from(runs.outerjoin(notification_preferences, notification_preferences.c.username == runs.c.owner))
    return (await conn.execute(query.where(runs.c.id == run_id))).mappings().first()


async def request_subject(conn: AsyncConnection, request_id: str) -> RowMapping | None:
    """The same for a request, with its state."""
    query = sa.select(
        requests.c.research_group, requests.c.pipeline_name, requests.c.owner, requests.c.state, *_PREFS
    ).select_from(requests.outerjoin(notification_preferences, notification_preferences.c.username == requests.c.owner))
    return (await conn.execute(query.where(requests.c.id == request_id))).mappings().first()


async def email_requested(conn: AsyncConnection, request_id: str) -> bool:
    """Whether the request was submitted with seed 001's ``send_email_notification``."""
    spec = (await conn.execute(sa.select(requests.c.spec).where(requests.c.id == request_id))).scalar_one_or_none()
    return bool(isinstance(spec, dict) and spec.get("send_email_notification"))


async def open_runs(conn: AsyncConnection, request_id: str, terminal: list[str]) -> int:
    """How many of the request's runs may still change state."""
    query = sa.select(sa.func.count()).where(runs.c.request_id == request_id, runs.c.state.not_in(terminal))
    return int((await conn.execute(query)).scalar_one())
