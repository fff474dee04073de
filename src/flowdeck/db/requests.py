"""Request rows: insert, read, list with keyset pages, and expansion claims.

State is never written here: :func:`flowdeck.services.runs.state_machine.transition_request`
owns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import datasets as dataset_rows
from flowdeck.db import leases
from flowdeck.db.tables import datasets, requests, runs
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.filters import RequestFilter
from flowdeck.domain.requests import RequestRecord, RequestRun, RequestSummary, SampleRun

# Everything but the (possibly large) spec, for listings.
SUMMARY = [c for c in requests.c if c.name != "spec"]
_SUMMARY_FIELDS = tuple(f.name for f in fields(RequestSummary))
_RUN_FIELDS = tuple(f.name for f in fields(RequestRun))


def summary_of(row: Mapping[Any, Any]) -> RequestSummary:
    """The typed record of a row of :data:`SUMMARY` (or of a whole row)."""
    return RequestSummary(**{name: row[name] for name in _SUMMARY_FIELDS})


def record_of(row: Mapping[Any, Any]) -> RequestRecord:
    """The typed record of a whole requests row (its spec is never NULL)."""
    return RequestRecord(**{name: row[name] for name in _SUMMARY_FIELDS}, spec=row["spec"])


def run_of(row: Mapping[Any, Any]) -> RequestRun:
    """The typed record of a row of :func:`run_page`: the one place that reads NULL parameters as empty."""
    values = {name: row[name] for name in _RUN_FIELDS}
    values["workflow_params"] = values["workflow_params"] or {}
    return RequestRun(**values)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(sa.insert(requests), values)


async def get(conn: AsyncConnection, request_id: str) -> RequestSummary | None:
    """One request by id (without its spec), or None."""
    result = await conn.execute(sa.select(*SUMMARY).where(requests.c.id == request_id))
    row = result.mappings().first()
    return summary_of(row) if row is not None else None


async def get_with_spec(conn: AsyncConnection, request_id: str) -> RequestRecord | None:
    """One whole request by id, or None."""
    row = (await conn.execute(sa.select(requests).where(requests.c.id == request_id))).mappings().first()
    return record_of(row) if row is not None else None


async def page(
    conn: AsyncConnection, flt: RequestFilter, limit: int, after: tuple[datetime, str] | None
) -> list[RequestSummary]:
    """Newest first; ``after`` is the (created_at, id) of the last row already seen."""
    query = sa.select(*SUMMARY)
    if flt.groups is not None:
        query = query.where(requests.c.research_group.in_(sorted(flt.groups)))
    for column, value in (
        (requests.c.state, flt.state),
        (requests.c.pipeline_name, flt.pipeline_name),
        (requests.c.research_group, flt.research_group),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        created, request_id = after
        query = query.where(
            sa.or_(
                requests.c.created_at < created,
                sa.and_(requests.c.created_at == created, requests.c.id < request_id),
            )
        )
    query = query.order_by(requests.c.created_at.desc(), requests.c.id.desc()).limit(limit)
    return [summary_of(row) for row in (await conn.execute(query)).mappings()]


async def set_cancel_requested(conn: AsyncConnection, request_id: str, now: datetime) -> None:
    await conn.execute(
        sa.update(requests).where(requests.c.id == request_id).values(cancel_requested=True, updated_at=now)
    )


async def claim(
    conn: AsyncConnection, *, owner: str, now: datetime, lease: timedelta, limit: int, postgres: bool
) -> list[RequestRecord]:
    """Take a lease on up to ``limit`` new requests that no live lease holds (see db/leases.py)."""
    claimed = await leases.claim(
        conn,
        requests,
        [requests.c.state == "new"],
        [requests.c.created_at],
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        postgres=postgres,
    )
    return [record_of(row) for row in claimed]


async def renew(conn: AsyncConnection, request_id: str, owner: str, until: datetime) -> bool:
    """Extend our lease; False if another worker has taken the request over."""
    result = await conn.execute(
        sa.update(requests)
        .where(requests.c.id == request_id, requests.c.lease_owner == owner)
        .values(lease_expires_at=until)
    )
    return result.rowcount == 1


async def release(conn: AsyncConnection, request_id: str, owner: str) -> None:
    await conn.execute(
        sa.update(requests)
        .where(requests.c.id == request_id, requests.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def is_cancel_requested(conn: AsyncConnection, request_id: str) -> bool:
    query = sa.select(requests.c.cancel_requested).where(requests.c.id == request_id)
    return bool((await conn.execute(query)).scalar_one_or_none())


# --- the runs of a request


async def run_indexes(conn: AsyncConnection, request_id: str) -> set[int]:
    """The request_index of every run already created for the request."""
    query = sa.select(runs.c.request_index).where(runs.c.request_id == request_id)
    return {int(i) for i in (await conn.execute(query)).scalars()}


async def run_page(conn: AsyncConnection, request_id: str, after: int | None, limit: int) -> list[RequestRun]:
    """The request's runs in request_index order, after index ``after``."""
    query = sa.select(
        runs.c.id,
        runs.c.request_index,
        runs.c.state,
        runs.c.dataset_id,
        runs.c.error_message,
        runs.c.created_at,
        runs.c.updated_at,
        runs.c.workflow_params,
    ).where(runs.c.request_id == request_id)
    if after is not None:
        query = query.where(runs.c.request_index > after)
    query = query.order_by(runs.c.request_index).limit(limit)
    return [run_of(row) for row in (await conn.execute(query)).mappings()]


async def run_states(conn: AsyncConnection, request_id: str) -> dict[str, int]:
    """How many of the request's runs are in each state."""
    query = sa.select(runs.c.state, sa.func.count()).where(runs.c.request_id == request_id).group_by(runs.c.state)
    return {state: int(n) for state, n in (await conn.execute(query)).all()}


async def active_run_ids(conn: AsyncConnection, request_id: str, terminal: list[str]) -> list[str]:
    query = sa.select(runs.c.id).where(runs.c.request_id == request_id, runs.c.state.not_in(terminal))
    return list((await conn.execute(query.order_by(runs.c.request_index))).scalars())


async def datasets_by_id(conn: AsyncConnection, ids: list[str]) -> list[DatasetRecord]:
    """The datasets a request names, deleted ones included (to check they exist and are visible)."""
    query = sa.select(datasets).where(datasets.c.id.in_(ids))
    return [dataset_rows.record_of(row) for row in (await conn.execute(query)).mappings()]


async def steps_due(conn: AsyncConnection, terminal: list[str], complete: str, limit: int) -> list[tuple[str, bool]]:
    """Requests waiting for their request-level step whose runs have all ended, oldest first,
    each with whether some run ended otherwise than ``complete`` (then the step is skipped)."""
    mine = runs.c.request_id == requests.c.id
    active = sa.select(runs.c.id).where(mine, runs.c.state.not_in(terminal)).exists()
    unfinished = sa.select(runs.c.id).where(mine, runs.c.state != complete).exists()
    query = (
        sa.select(requests.c.id, unfinished.label("blocked"))
        .where(requests.c.step_state == "waiting", requests.c.state != "new", ~active)
        .order_by(requests.c.created_at, requests.c.id)
        .limit(limit)
    )
    return [(str(row.id), bool(row.blocked)) for row in (await conn.execute(query)).all()]


async def set_step_state(conn: AsyncConnection, request_id: str, expected: str, new: str, now: datetime) -> bool:
    """Compare-and-set of a request's step_state (docs/adr/0019); False when it had moved on."""
    query = (
        sa.update(requests)
        .where(requests.c.id == request_id, requests.c.step_state == expected)
        .values(step_state=new, updated_at=now)
    )
    return (await conn.execute(query)).rowcount == 1


async def sample_runs(conn: AsyncConnection, request_id: str, below: int) -> list[SampleRun]:
    """The request's runs with request_index below ``below`` (its samples), in index order."""
    query = (
        sa.select(runs.c.id, runs.c.request_index, runs.c.workflow_params, runs.c.output_files)
        .where(runs.c.request_id == request_id, runs.c.request_index < below)
        .order_by(runs.c.request_index)
    )
    return [
        SampleRun(row.id, row.request_index, row.workflow_params or {}, row.output_files or [])
        for row in (await conn.execute(query)).all()
    ]
