"""Run rows: insert, read, list with keyset pages, and worker claims.

State is never written here: :mod:`flowdeck.services.runs.state_machine` owns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import leases, run_counts
from flowdeck.db.engine import PointRead
from flowdeck.db.tables import run_attachments, run_tags, runs
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.runs import RunRecord, RunStatus, RunSummary
from flowdeck.domain.states import ENGINE_HELD, State

Row = RowMapping
# The FTS5 trigram index of runs.description on SQLite (migration 0014), its shortest needle, and
# the most runs it drives a page for: each hit costs a row read and a sort place (~14 µs), where a
# needle with more hits fills a newest-first page sooner by scanning (bench/NOTES.md).
DESCRIPTION_FTS = "runs_description_fts"
TRIGRAM = 3
FTS_MAX_HITS = 1000
# What a run summary (WES RunSummary, and its page token) reads: no JSON document but the tags.
SUMMARY_COLUMNS = (runs.c.id, runs.c.state, runs.c.start_time, runs.c.end_time, runs.c.tags, runs.c.created_at)


# A stored state's member by its value: a dict lookup, where State(value) costs about 1 µs a run
# (the status poll reads one run per request; bench/NOTES.md).
_STATES = {state.value: state for state in State}
_FIELDS = tuple(f.name for f in fields(RunRecord))
_pick = itemgetter(*_FIELDS)
# The JSON columns a record reads as empty when they hold nothing (NULL, or older rows without them).
_EMPTY: dict[str, type[dict[str, Any]] | type[list[Any]]] = {
    "workflow_params": dict,
    "workflow_engine_parameters": dict,
    "tags": dict,
    "attachments": list,
    "backend_data": dict,
    "pipeline_target": dict,
    "input_datasets": dict,
    "cache_inputs": dict,
    "system_logs": list,
}


def record_of(row: Mapping[Any, Any]) -> RunRecord:
    """The typed record of a whole runs row: the one place that applies the JSON defaults."""
    values = dict(zip(_FIELDS, _pick(row), strict=True))
    for name, empty in _EMPTY.items():
        if values[name] is None:
            values[name] = empty()
    values["state"] = _STATES[values["state"]]
    # Filled in place of the generated __init__, whose frozen assignments of every field cost
    # several times the rest of this function for each run a page or a sync batch reads
    # (bench/NOTES.md); the unit test holds the fields to the table's columns.
    record = object.__new__(RunRecord)
    record.__dict__.update(values)
    return record


def summary_of(row: Mapping[Any, Any]) -> RunSummary:
    """The typed record of a row of :data:`SUMMARY_COLUMNS`."""
    return RunSummary(
        row["id"], _STATES[row["state"]], row["start_time"], row["end_time"], row["tags"] or {}, row["created_at"]
    )


def status_of(row: Mapping[Any, Any]) -> RunStatus:
    """The typed record of a row of :data:`STATE_BY_ID`."""
    return RunStatus(row["id"], _STATES[row["state"]], row["research_group"])


_ATTACHMENTS_OF = (
    sa.select(run_attachments.c.name, run_attachments.c.content)
    .where(run_attachments.c.run_id == sa.bindparam("run_id"))
    .order_by(run_attachments.c.name)
)
TableRows = tuple[sa.Table, list[dict[str, Any]]]


@dataclass(frozen=True)
class NewRunRows:
    """What storing one new run writes: its row and its uploaded files (name, bytes)."""

    values: dict[str, Any]
    attachments: Sequence[tuple[str, bytes]] = ()


def rows_of(new: Sequence[NewRunRows]) -> list[TableRows]:
    """The rows that store these runs, their tags and attachments, table by table (parents first)."""
    tags = [
        {"run_id": r.values["id"], "key": k, "value": v, "created_at": r.values["created_at"]}
        for r in new
        for k, v in (r.values.get("tags") or {}).items()
    ]
    files = [
        {"run_id": r.values["id"], "name": name, "content": content} for r in new for name, content in r.attachments
    ]
    return [(runs, [r.values for r in new]), (run_tags, tags), (run_attachments, files)]


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert one run and its tags inside ``conn``'s transaction (new runs from the API are
    written by Database.insert_rows with :func:`rows_of`)."""
    for table, rows in rows_of([NewRunRows(values)]):
        if rows:
            await conn.execute(sa.insert(table), rows)


async def attachments(conn: AsyncConnection, run_id: str) -> list[tuple[str, bytes]]:
    """A run's stored attachments as (relative name, bytes), by name."""
    result = await conn.execute(_ATTACHMENTS_OF, {"run_id": run_id})
    return [(name, bytes(content)) for name, content in result]


# A run by id (parameter ``run_id``), for Database.read_point: the run reads of every request.
BY_ID = PointRead(sa.select(runs).where(runs.c.id == sa.bindparam("run_id")))

# What a status answer needs of one run (parameter ``run_id``): no JSON or dates to decode.
STATE_BY_ID = PointRead(
    sa.select(runs.c.id, runs.c.state, runs.c.research_group).where(runs.c.id == sa.bindparam("run_id"))
)


async def cache_source(conn: AsyncConnection, cache_key: str, research_group: str | None) -> RunRecord | None:
    """The newest COMPLETE run with results stored and this call-cache key in this research group
    (None: runs of no group): one probe of the index of migration 0010, however many runs exist."""
    group = runs.c.research_group.is_(None) if research_group is None else runs.c.research_group == research_group
    query = (
        sa.select(runs)
        .where(runs.c.cache_key == cache_key, group, runs.c.state == State.COMPLETE.value)
        .where(runs.c.results.is_not(None))
        .order_by(runs.c.end_time.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else record_of(row)


async def get(conn: AsyncConnection, run_id: str) -> RunRecord | None:
    """One run by id, or None."""
    result = await conn.execute(BY_ID.statement, {"run_id": run_id})
    row = result.mappings().first()
    return None if row is None else record_of(row)


async def get_many(conn: AsyncConnection, run_ids: Sequence[str]) -> list[RunRecord]:
    result = await conn.execute(sa.select(runs).where(runs.c.id.in_(run_ids)))
    return [record_of(row) for row in result.mappings()]


async def update(conn: AsyncConnection, run_id: str, values: dict[str, Any]) -> None:
    """Write bookkeeping fields (never ``state``: the state machine owns it)."""
    if "state" in values:
        raise ValueError("state changes go through the state machine")
    await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(**values))


def _where(flt: RunFilter, *, tags: bool = True, fts: bool = False) -> list[sa.ColumnElement[bool]]:
    """``fts``: narrow a description filter by SQLite's trigram index (see :func:`_use_fts`)."""
    clauses: list[sa.ColumnElement[bool]] = []
    if flt.groups is not None:
        clauses.append(runs.c.research_group.in_(sorted(flt.groups)))
    if flt.states:
        clauses.append(runs.c.state.in_(sorted(flt.states)))
    for column, value in (
        (runs.c.dataset_id, flt.dataset_id),
        (runs.c.pipeline_name, flt.pipeline_name),
        (runs.c.research_group, flt.research_group),
        (runs.c.request_id, flt.request_id),
        (runs.c.origin, flt.origin),
    ):
        if value is not None:
            clauses.append(column == value)
    if flt.description_contains:
        clauses += _description(flt.description_contains, fts=fts)
    if tags:
        for key, value in (flt.tags or {}).items():
            clauses.append(runs.c.id.in_(_tagged(key, value)))
    return clauses


def _description(needle: str, *, fts: bool) -> list[sa.ColumnElement[bool]]:
    """The substring test, which alone decides what matches; with ``fts``, also the runs SQLite's
    trigram index finds: a superset of the matches, so the result is the same, only found sooner.
    PostgreSQL's ILIKE uses its trigram index by itself; MariaDB scans (no index keeps substring
    semantics there)."""
    contains = runs.c.description.icontains(needle, autoescape=True)
    return [sa.literal_column("runs.rowid").in_(_fts_hits(needle)), contains] if fts else [contains]


def _fts_hits(needle: str) -> sa.Select[tuple[int]]:
    phrase = '"' + needle.replace('"', '""') + '"'  # FTS5 query syntax: one literal phrase
    table = sa.table(DESCRIPTION_FTS, sa.column("rowid", sa.Integer()))
    return sa.select(table.c.rowid).where(sa.literal_column(DESCRIPTION_FTS).op("MATCH")(phrase))


def fts_serves(needle: str) -> bool:
    """Whether SQLite's trigram index finds every run holding ``needle``."""
    return len(needle) >= TRIGRAM and "\x00" not in needle


async def _use_fts(conn: AsyncConnection, flt: RunFilter) -> bool:
    """Whether SQLite's trigram index should drive a description filter: a needle it serves (three
    characters or more: a shorter one has no trigram, and FTS5 would find nothing) with at most
    :data:`FTS_MAX_HITS` hits, counted by the index (a few milliseconds at a million runs)."""
    needle = flt.description_contains
    if conn.dialect.name != "sqlite" or not needle or not fts_serves(needle):
        return False
    probe = _fts_hits(needle).limit(FTS_MAX_HITS + 1).subquery()
    hits = (await conn.execute(sa.select(sa.func.count()).select_from(probe))).scalar_one()
    return int(hits) <= FTS_MAX_HITS


def _tagged(key: str, value: str) -> sa.Select[tuple[str]]:
    # Uncorrelated, so the tag index drives it: a tag nothing carries ends at once (a correlated
    # EXISTS walked every run newest first: 1.9 s at a million runs).
    return sa.select(run_tags.c.run_id).where(run_tags.c.key == key, run_tags.c.value == value)


async def page(
    conn: AsyncConnection, flt: RunFilter, limit: int, after: tuple[datetime, str] | None
) -> list[RunRecord]:
    """Newest first; ``after`` is the (created_at, id) of the last run already seen."""
    return [record_of(row) for row in await _page(conn, flt, limit, after, runs.c)]


async def summary_page(
    conn: AsyncConnection, flt: RunFilter, limit: int, after: tuple[datetime, str] | None
) -> list[RunSummary]:
    """:func:`page`, reading only :data:`SUMMARY_COLUMNS`."""
    return [summary_of(row) for row in await _page(conn, flt, limit, after, SUMMARY_COLUMNS)]


async def _page(
    conn: AsyncConnection,
    flt: RunFilter,
    limit: int,
    after: tuple[datetime, str] | None,
    columns: Iterable[sa.ColumnElement[Any]],
) -> list[Row]:
    """With a tag filter the first tag's index (key, value, created_at, run_id) drives the page, so
    a page costs its own rows whether the tag is rare or on every run."""
    query = sa.select(*columns)
    created, run_id = runs.c.created_at, runs.c.id
    tags = list((flt.tags or {}).items())
    if tags:
        (key, value), rest = tags[0], tags[1:]
        query = query.select_from(run_tags.join(runs, runs.c.id == run_tags.c.run_id)).where(
            run_tags.c.key == key, run_tags.c.value == value, *(runs.c.id.in_(_tagged(k, v)) for k, v in rest)
        )
        created, run_id = run_tags.c.created_at, run_tags.c.run_id
    query = query.where(*_where(flt, tags=False, fts=await _use_fts(conn, flt)))
    if after is not None:
        at, last = after
        # "<= at AND (...)" gives SQLite an index range to seek; a bare OR of the two cases
        # makes its planner scan the index from the top (60 ms at a million runs, not 0.1).
        query = query.where(created <= at, sa.or_(created < at, run_id < last))
    query = query.order_by(created.desc(), run_id.desc()).limit(limit)
    result = await conn.execute(query)
    return list(result.mappings())


async def count(conn: AsyncConnection, flt: RunFilter) -> int:
    """How many runs match; from the kept counts when only groups, states and a pipeline filter."""
    # '' is how the counts key a run without a group or pipeline, so it is not a name to look up.
    if "" not in (flt.pipeline_name, flt.research_group) and flt == RunFilter(
        groups=flt.groups, states=flt.states, pipeline_name=flt.pipeline_name, research_group=flt.research_group
    ):
        groups = flt.groups
        if flt.research_group is not None:
            groups = frozenset({flt.research_group}) & (flt.groups if flt.groups is not None else {flt.research_group})
        by_state = await run_counts.by_state(conn, groups, flt.pipeline_name)
        wanted = {State(s).value for s in flt.states or ()}
        return sum(n for state, n in by_state.items() if not wanted or state in wanted)
    result = await conn.execute(
        sa.select(sa.func.count()).select_from(runs).where(*_where(flt, fts=await _use_fts(conn, flt)))
    )
    return int(result.scalar_one())


async def claim(
    conn: AsyncConnection,
    *,
    states: Sequence[State],
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    postgres: bool,
    due_only: bool = True,
    backends: Sequence[str] | None = None,
    submitted: bool | None = None,
    ids: Sequence[str] | None = None,
    group: str | None = None,
) -> list[RunRecord]:
    """Take a lease on up to ``limit`` runs in ``states`` that no live lease holds (see db/leases.py),
    of research group ``group`` if given (``''``: runs of no group)."""
    conditions: list[sa.ColumnElement[bool]] = [runs.c.state.in_([s.value for s in states])]
    if due_only:
        conditions.append(sa.or_(runs.c.next_check_at.is_(None), runs.c.next_check_at <= now))
    if backends is not None:
        conditions.append(runs.c.backend.in_(list(backends)))
    if ids is not None:
        conditions.append(runs.c.id.in_(list(ids)))
    if submitted is not None:
        has_id = runs.c.backend_run_id.is_not(None)
        conditions.append(has_id if submitted else sa.not_(has_id))
    if group is not None:
        conditions.append(runs.c.research_group.is_(None) if group == "" else runs.c.research_group == group)
    claimed = await leases.claim(
        conn,
        runs,
        conditions,
        [runs.c.next_check_at.asc().nulls_first(), runs.c.created_at],
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        postgres=postgres,
    )
    return [record_of(row) for row in claimed]


async def next_due_at(conn: AsyncConnection, states: Sequence[State], backends: Sequence[str]) -> datetime | None:
    """When the soonest unleased, submitted run in ``states`` of ``backends`` is next due (None: none is)."""
    query = sa.select(sa.func.min(runs.c.next_check_at)).where(
        runs.c.state.in_([s.value for s in states]),
        runs.c.backend.in_(list(backends)),
        runs.c.backend_run_id.is_not(None),
        runs.c.lease_owner.is_(None),
    )
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def release(
    conn: AsyncConnection, run_id: str, owner: str, next_check_at: datetime | None, **values: Any
) -> None:
    """Give up a lease (only if still ours) and set when the run is next due."""
    await conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, next_check_at=next_check_at, **values)
    )


async def release_many(conn: AsyncConnection, owner: str, due: Sequence[tuple[str, datetime | None]]) -> None:
    """:func:`release` of many runs (run id, next check) in one statement, writing nothing else."""
    if not due:
        return
    statement = (
        sa.update(runs)
        .where(runs.c.id == sa.bindparam("run_id"), runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, next_check_at=sa.bindparam("due"))
    )
    await conn.execute(statement, [{"run_id": run_id, "due": at} for run_id, at in due])


async def renew_leases(conn: AsyncConnection, owner: str, until: datetime) -> None:
    await conn.execute(sa.update(runs).where(runs.c.lease_owner == owner).values(lease_expires_at=until))


async def count_executing(conn: AsyncConnection, backends: Sequence[str]) -> int:
    """Runs holding a slot on local engines (admission control)."""
    query = (
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.backend.in_(list(backends)), runs.c.state.in_([s.value for s in ENGINE_HELD]))
    )
    return int((await conn.execute(query)).scalar_one())


async def active_ids(conn: AsyncConnection, states: Sequence[State], after: str | None, limit: int) -> list[str]:
    """Ids of runs in ``states``, in id order, for passes that must see every one."""
    query = sa.select(runs.c.id).where(runs.c.state.in_([s.value for s in states]))
    if after is not None:
        query = query.where(runs.c.id > after)
    result = await conn.execute(query.order_by(runs.c.id).limit(limit))
    return list(result.scalars())
