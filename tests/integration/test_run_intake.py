"""New runs: stored with their attachments in one commit, several submissions at once, and
their folder written at dispatch. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.db.tables import events, run_attachments, run_tags, runs
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import service as run_service
from tests.conftest import make_settings
from tests.integration.test_wes_api import WES, demo_form, drive

FILES = [("main.txt", b"first\x00binary\xff"), ("sub/dir/data.csv", b"a,b\n1,2\n")]


async def submit_with_files(api: httpx.AsyncClient, **extra: str) -> str:
    response = await api.post(
        f"{WES}/runs",
        data=demo_form(**extra),
        files=[("workflow_attachment", (name, content)) for name, content in FILES],
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def test_attachments_are_stored_with_the_run_and_written_to_its_folder_at_dispatch(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    run_id = await submit_with_files(api)
    async with services.db.read() as conn:
        assert await run_rows.attachments(conn, run_id) == sorted(FILES)
    folder = services.runs_dir / run_id
    assert not folder.exists()  # the demo backend reads no files to validate: nothing on disk yet
    await drive(services, run_id, {"COMPLETE"}, api)
    for name, content in FILES:
        assert (folder / "attachments" / name).read_bytes() == content


async def test_concurrent_submissions_are_all_stored_each_with_its_own_tags_files_and_event(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    ids = await asyncio.gather(*(submit_with_files(api, tags=json.dumps({"n": str(i)})) for i in range(24)))
    assert len(set(ids)) == 24
    async with services.db.read() as conn:
        tags: dict[str, str] = {
            r.run_id: r.value for r in await conn.execute(sa.select(run_tags.c.run_id, run_tags.c.value))
        }
        files = (await conn.execute(sa.select(sa.func.count()).select_from(run_attachments))).scalar_one()
        created = (
            await conn.execute(
                sa.select(events.c.run_id).where(events.c.to_state == "QUEUED", events.c.kind == "state")
            )
        ).scalars()
        created_ids = sorted(created)
    assert {tags[run_id] for run_id in ids} == {str(i) for i in range(24)}
    assert files == 24 * len(FILES)
    assert created_ids == sorted(ids)
    for run_id in ids:
        log = (await api.get(f"{WES}/runs/{run_id}")).json()
        assert log["state"] == "QUEUED"
        assert log["request"]["tags"]["n"] == tags[run_id]


async def test_rerun_takes_the_attachments_from_the_database(api: httpx.AsyncClient, services: AppContext) -> None:
    run_id = await submit_with_files(api)
    await drive(services, run_id, {"COMPLETE"}, api)
    (services.runs_dir / run_id / "attachments" / FILES[0][0]).unlink()  # the stored record wins
    response = await api.post(f"/jobs/{run_id}/rerun")
    assert response.status_code == 201, response.text
    rerun_id = response.json()["id"]
    async with services.db.read() as conn:
        assert await run_rows.attachments(conn, rerun_id) == sorted(FILES)


async def test_insert_rows_is_one_transaction_and_raises_sqlalchemys_errors(services: AppContext) -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    good = _run("insert-good", now)
    duplicate_file = [
        {"run_id": "insert-good", "name": "a", "content": b"1"},
        {"run_id": "insert-good", "name": "a", "content": b"2"},
    ]
    with pytest.raises(IntegrityError):
        await services.db.insert_rows([(runs, [good]), (run_attachments, duplicate_file)])
    async with services.db.read() as conn:
        assert await run_rows.get(conn, "insert-good") is None  # rolled back with the failing statement

    await services.db.insert_rows([(runs, [good]), (run_attachments, duplicate_file[:1]), (run_tags, [])])
    async with services.db.read() as conn:
        row = await run_rows.get(conn, "insert-good")
        assert await run_rows.attachments(conn, "insert-good") == [("a", b"1")]
    # Values went through SQLAlchemy's own conversions: JSON documents and UTC datetimes read back.
    assert row is not None
    assert row.workflow_params == {"nested": [1, {"x": None}]}
    assert row.created_at == now
    assert (row.backend_data, row.pipeline_target, row.dataset) == ({"engine": "data"}, {"workflow": "w"}, None)


async def test_insert_rows_stores_the_same_values_as_sqlalchemys_insert(services: AppContext) -> None:
    """insert_rows runs its own inserts on SQLite (db/sqlite_inline.py): what it stores, read back as the
    database holds it (text, not decoded), is what SQLAlchemy's own insert of the same row stores."""
    moment = datetime(2026, 3, 29, 1, 30, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ours, theirs = _run("stored-by-insert-rows", moment), _run("stored-by-sqlalchemy", moment)
    for row in (ours, theirs):
        row.update(
            workflow_params={"é": [1.5, True, None, {"deep": "ünï\u2028"}], "": ""},
            tags={"k": "v"},
            backend_data={"engine": "ünï"},
            pipeline_target={"workflow": "w", "nested": [None]},
            dataset=None,
            cancel_sent_at=moment,
            updated_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
            next_check_at=datetime(2026, 11, 21, 12, 0, 0, 1, tzinfo=UTC),
        )
    await services.db.insert_rows([(runs, [ours])])
    async with services.db.write() as conn:
        await conn.execute(sa.insert(runs), [theirs])
    columns = ", ".join(c.name for c in runs.c if c.name != "id")
    async with services.db.read() as conn:
        stored = {
            row[0]: row[1:]
            for row in await conn.execute(
                sa.text(f"SELECT id, {columns} FROM runs WHERE id IN ('stored-by-insert-rows', 'stored-by-sqlalchemy')")
            )
        }
    assert stored["stored-by-insert-rows"] == stored["stored-by-sqlalchemy"]


async def test_a_submission_the_database_refuses_fails_alone(api: httpx.AsyncClient, services: AppContext) -> None:
    """A batch with a run that breaks a constraint is written again run by run (services.group_commit)."""
    bad = run_service.NewRun(
        workflow_type="DEMO", workflow_type_version="1.0", workflow_url="demo://x", request_id="no-such-request"
    )
    anyone = LOCAL_USER
    results = await asyncio.gather(
        run_service.submit(services, run_service.NewRun("DEMO", "1.0", "demo://a"), anyone),
        run_service.submit(services, bad, anyone),
        run_service.submit(services, run_service.NewRun("DEMO", "1.0", "demo://b"), anyone),
        return_exceptions=True,
    )
    assert isinstance(results[1], IntegrityError)
    for run_id in (results[0], results[2]):
        assert isinstance(run_id, str)
        assert (await api.get(f"{WES}/runs/{run_id}/status")).json()["state"] == "QUEUED"


def _run(run_id: str, now: datetime) -> dict[str, object]:
    return {
        "id": run_id,
        "research_group": None,
        "owner": "tester",
        "origin": "wes",
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://x",
        "workflow_params": {"nested": [1, {"x": None}]},
        "workflow_engine": "demo",
        "workflow_engine_parameters": {},
        "tags": {},
        "attachments": ["a"],
        "backend": "demo",
        "backend_data": {"engine": "data"},
        "pipeline_target": {"workflow": "w"},
        "dataset": None,
        "state": "QUEUED",
        "system_logs": [],
        "created_at": now,
        "updated_at": now,
        "next_check_at": now,
    }


async def test_sqlite_insert_rows_waits_for_a_writer_holding_the_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    """SQLite has one write lock for the whole database (PostgreSQL writers of other rows do not wait)."""
    settings = make_settings(tmp_path)
    upgrade(settings)
    services = AppContext.create(settings)
    try:
        await _insert_behind_a_slow_writer(services)
    finally:
        await services.close()


async def _insert_behind_a_slow_writer(services: AppContext) -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> None:
        async with services.db.write() as conn:
            await conn.execute(sa.update(runs).where(runs.c.id == "nobody").values(state="QUEUED"))
            holding.set()
            await release.wait()  # the write lock is held across a real suspension

    writer = asyncio.create_task(slow_writer())
    await asyncio.wait_for(holding.wait(), timeout=10)
    inserting = asyncio.create_task(services.db.insert_rows([(runs, [_run("after-lock", now)])]))
    await asyncio.sleep(0.3)  # longer than a statement's own busy timeout: still waiting, not failed
    assert not inserting.done()
    release.set()  # the loop ran the writer on: it was never blocked by the waiting insert
    await asyncio.wait_for(asyncio.gather(writer, inserting), timeout=10)
    async with services.db.read() as conn:
        assert await run_rows.get(conn, "after-lock") is not None
