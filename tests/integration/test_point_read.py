"""Database.read_point, the status poll's read: the same row as SQLAlchemy's execution on both
databases, and on SQLite safe next to writers and when every pooled connection is in use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from flowdeck.db import runs as run_rows
from flowdeck.db.engine import SQLITE_POOL_SIZE, Database, PointRead
from flowdeck.db.migrate import upgrade
from flowdeck.db.tables import runs
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import service as run_service
from tests.conftest import make_settings


# Every column, so that SQLAlchemy's conversions (JSON documents, dates) are compared too.
async def _submit(services: AppContext, **values: Any) -> str:
    new = run_service.NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://point-read",
        workflow_params={"n": 1, "nested": {"x": [1, 2]}},
        tags={"k": "v"},
        **values,
    )
    return await run_service.submit(services, new, LOCAL_USER)


async def test_a_point_read_returns_what_sqlalchemy_returns(services: AppContext) -> None:
    run_id = await _submit(services)
    async with services.db.read() as conn:  # through SQLAlchemy's execution
        expected = (await conn.execute(run_rows.BY_ID.statement, {"run_id": run_id})).mappings().first()
    assert expected is not None
    for _ in range(2):  # compiled on the first call, reused after
        assert await services.db.read_point(run_rows.BY_ID, {"run_id": run_id}) == dict(expected)
        state = await services.db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id})
        assert state == {"id": run_id, "state": "QUEUED", "research_group": None}
    assert await services.db.read_point(run_rows.STATE_BY_ID, {"run_id": "no-such-run"}) is None


async def test_a_point_read_sees_commits_and_not_a_write_in_progress(services: AppContext) -> None:
    run_id = await _submit(services)
    writing, release = asyncio.Event(), asyncio.Event()

    async def cancel_slowly() -> None:
        async with services.db.write() as conn:
            await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(state="CANCELING"))
            writing.set()
            await release.wait()  # the write lock is held across a real suspension

    writer = asyncio.create_task(cancel_slowly())
    await asyncio.wait_for(writing.wait(), timeout=10)
    # A reader never waits for a writer (WAL on SQLite, MVCC on PostgreSQL) and sees the last commit.
    row = await asyncio.wait_for(services.db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id}), timeout=5)
    assert row == {"id": run_id, "state": "QUEUED", "research_group": None}
    release.set()
    await asyncio.wait_for(writer, timeout=10)
    row = await services.db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id})
    assert row == {"id": run_id, "state": "CANCELING", "research_group": None}


def test_a_point_read_takes_named_parameters_only() -> None:
    for statement in (
        sa.select(runs.c.id).where(runs.c.id == "literal"),
        sa.select(runs.c.id).where(runs.c.id.in_(sa.bindparam("ids", expanding=True))),
    ):
        database = Database(make_settings(Path("/nonexistent")))
        assert database._sqlite is not None
        with pytest.raises(ValueError, match="named bindparam"):
            database._sqlite.read_point_sync(PointRead(statement).statement, {"ids": ["a"]})


def _sqlite(tmp_path: Path) -> Database:
    settings = make_settings(tmp_path)
    upgrade(settings)
    return Database(settings)


async def test_sqlite_point_reads_wait_for_their_first_connection_then_keep_it(tmp_path: Path) -> None:
    db = _sqlite(tmp_path)
    held = []
    try:
        for _ in range(2 * SQLITE_POOL_SIZE):  # pool_size + max_overflow: every connection in use
            held.append(await db.engine.connect())
        reader = asyncio.create_task(db.read_point(run_rows.STATE_BY_ID, {"run_id": "x"}))
        await asyncio.sleep(0.1)
        assert not reader.done()  # waiting for a connection, not failing
        await held.pop().close()
        assert await asyncio.wait_for(reader, timeout=10) is None
        # The reads' connection is theirs now: with every other one in use they still answer.
        assert await asyncio.wait_for(db.read_point(run_rows.STATE_BY_ID, {"run_id": "x"}), timeout=1) is None
        assert db.engine.sync_engine.pool.checkedout() == 2 * SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    finally:
        for conn in held:
            await conn.close()
        await db.dispose()


async def test_sqlite_point_reads_from_two_threads_event_loops(tmp_path: Path) -> None:
    """Two event loops in two threads share the reads' connection; each gets its own rows."""
    settings = make_settings(tmp_path)
    upgrade(settings)
    services = AppContext.create(settings)
    ids = [await _submit(services), await _submit(services)]
    db = services.db

    def reads(run_id: str) -> list[str]:
        async def many() -> list[str]:
            rows = [await db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id}) for _ in range(300)]
            return [str(row["id"]) if row else "" for row in rows]

        return asyncio.run(many())

    try:
        results = await asyncio.gather(*(asyncio.to_thread(reads, run_id) for run_id in ids))
        assert results == [[run_id] * 300 for run_id in ids]
    finally:
        await services.close()
    assert db.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_sqlite_point_read_errors_are_sqlalchemys(tmp_path: Path) -> None:
    db = _sqlite(tmp_path)
    missing = PointRead(
        sa.select(sa.column("id")).select_from(sa.table("no_such_table")).where(sa.column("id") == sa.bindparam("k"))
    )
    try:
        assert await db.read_point(run_rows.STATE_BY_ID, {"run_id": "x"}) is None
        with pytest.raises(OperationalError, match="no such table"):
            await db.read_point(missing, {"k": 1})
        assert await db.read_point(run_rows.STATE_BY_ID, {"run_id": "x"}) is None  # the connection went back
        assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]  # the reads' own
    finally:
        await db.dispose()
    assert db.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
