"""The audit trail: one row per state change of a run or request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import events, requests, runs
from flowdeck.domain.filters import EventFilter

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
) -> int:
    """Write one event; its id."""
    # Values as parameters, not .values(): the statement stays one cached compilation.
    result = await conn.execute(
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
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def for_run(conn: AsyncConnection, run_id: str, limit: int = 1000) -> list[RowMapping]:
    query = sa.select(events).where(events.c.run_id == run_id).order_by(events.c.id).limit(limit)
    return list((await conn.execute(query)).mappings())


async def for_request(conn: AsyncConnection, request_id: str, limit: int = 1000) -> list[RowMapping]:
    query = sa.select(events).where(events.c.request_id == request_id).order_by(events.c.id).limit(limit)
    return list((await conn.execute(query)).mappings())


# --- the live stream (services.events): events after an id, with what their filters need

CHANNEL = "flowdeck_events"  # the NOTIFY channel of migration 0005


_group = sa.func.coalesce(runs.c.research_group, requests.c.research_group)
_pipeline = sa.func.coalesce(runs.c.pipeline_name, requests.c.pipeline_name)
_request = sa.func.coalesce(events.c.request_id, runs.c.request_id)
_STREAM = sa.select(
    events,
    _group.label("research_group"),
    _pipeline.label("pipeline_name"),
    _request.label("owning_request_id"),
).select_from(
    events.outerjoin(runs, runs.c.id == events.c.run_id).outerjoin(requests, requests.c.id == events.c.request_id)
)


async def after(conn: AsyncConnection, after_id: int, limit: int, flt: EventFilter | None = None) -> list[RowMapping]:
    """Up to ``limit`` events with an id above ``after_id``, oldest first, each with its run's or
    request's research group, pipeline and request (``owning_request_id``)."""
    query = _STREAM.where(events.c.id > after_id)
    if flt is not None:
        query = query.where(*_conditions(flt))
    return list((await conn.execute(query.order_by(events.c.id).limit(limit))).mappings())


def _conditions(flt: EventFilter) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if flt.run_id is not None:
        found.append(events.c.run_id == flt.run_id)
    if flt.request_id is not None:
        found.append(_request == flt.request_id)
    if flt.pipeline_name is not None:
        found.append(_pipeline == flt.pipeline_name)
    if flt.research_group is not None:
        found.append(_group == flt.research_group)
    if flt.kind is not None:
        found.append(events.c.kind == flt.kind)
    if flt.groups is not None:
        found.append(_group.in_(sorted(flt.groups)))
    return found


async def latest_id(conn: AsyncConnection) -> int:
    """The highest event id (0 when there is none): a stream without Last-Event-ID starts here."""
    return int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)))).scalar_one())


async def notifications(database_url: str) -> AsyncIterator[None]:
    """Yield once per committed INSERT into ``events`` (PostgreSQL LISTEN on its own connection).

    Ends with the connection's error when it is lost; the caller reconnects.
    """
    import psycopg  # only on PostgreSQL; the package is the postgres extra

    conninfo = sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        yield None  # listening: whatever commits from now on wakes the caller
        async for _ in conn.notifies():
            yield None
