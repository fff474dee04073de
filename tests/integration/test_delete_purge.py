"""Deleting ended runs (both doors) and expiring old ones (``flowdeck purge``, the worker's schedule):
stored files and rows go, the audit row stays, nothing else is touched, a running run is refused."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowdeck.cli.main import main as cli_main
from flowdeck.db import deletions
from flowdeck.db.tables import events, run_attachments, run_tags, runs, tasks
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.runs import purge
from flowdeck.services.runs.results import keys
from flowdeck.worker.loop import Worker
from tests.integration.test_results_storage import _engines, run_to_end
from tests.integration.test_wes_api import WES, drive, submit

ENDED = ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"]


async def _rows(services: AppContext, run_id: str) -> dict[str, int]:
    """How many rows each table holds for the run."""
    counted = {}
    async with services.db.read() as conn:
        for table in (runs, tasks, events, run_attachments, run_tags):
            column = table.c.id if table is runs else table.c.run_id
            query = sa.select(sa.func.count()).select_from(table).where(column == run_id)
            counted[table.name] = int((await conn.execute(query)).scalar_one())
    return counted


async def _demo_run(api: httpx.AsyncClient, services: AppContext) -> str:
    run_id = await submit(api, tags=json.dumps({"keep": "me"}))
    await drive(services, run_id, {"COMPLETE"}, api)
    return run_id


async def _results(services: AppContext, run_id: str) -> Any:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(runs.c.results).where(runs.c.id == run_id))).scalar_one()


async def test_delete_removes_files_and_rows_and_keeps_the_audit(api: httpx.AsyncClient, services: AppContext) -> None:
    run_id = await run_to_end(api, _engines(services, "cwltool", any_database=True), "cwltool")
    other = await _demo_run(api, services)
    stored = keys(await _results(services, run_id))
    store = storage_of(services)
    assert len(stored) >= 4
    assert all(store.exists(k) for k in stored)
    before_other = await _rows(services, other)
    assert (await _rows(services, run_id))["tasks"] >= 2

    answer = await api.delete(f"{WES}/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"] is True
    assert answer.json()["files"] == len(stored)

    assert not any(store.exists(k) for k in stored)
    assert set((await _rows(services, run_id)).values()) == {0}
    assert (await api.get(f"{WES}/runs/{run_id}")).status_code == 404
    assert (await api.delete(f"{WES}/runs/{run_id}")).status_code == 404
    async with services.db.read() as conn:
        [audit] = await deletions.audit(conn, run_id)
    assert (audit["state"], audit["actor"], audit["reason"]) == ("COMPLETE", "local", "deleted on request")
    assert audit["files"] == len(stored)
    assert audit["bytes"] > 0
    assert await _rows(services, other) == before_other  # nothing else touched
    info = (await api.get(f"{WES}/service-info")).json()
    assert info["system_state_counts"]["COMPLETE"] == 1

    job = await api.delete(f"/jobs/{other}")
    assert job.status_code == 200, job.text
    assert set((await _rows(services, other)).values()) == {0}


async def test_a_run_that_has_not_ended_is_not_deleted(api: httpx.AsyncClient, services: AppContext) -> None:
    run_id = await submit(api, workflow_engine_parameters=json.dumps({"duration_seconds": "60"}))
    await drive(services, run_id, {"RUNNING"}, api)
    for path in (f"{WES}/runs/{run_id}", f"/jobs/{run_id}"):
        answer = await api.delete(path)
        assert answer.status_code == 409, answer.text
        assert "only an ended run can be deleted; cancel it first" in answer.text
    assert (await _rows(services, run_id))["runs"] == 1


async def _age(services: AppContext, run_id: str, days: float) -> None:
    async with services.db.write() as conn:
        await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(end_time=utcnow() - timedelta(days=days)))


async def test_purge_deletes_by_age_and_state(
    api: httpx.AsyncClient, services: AppContext, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    old, young = await _demo_run(api, services), await _demo_run(api, services)
    await _age(services, old, 10)
    listed = await purge.purge(services, timedelta(days=5), ENDED, dry_run=True)
    assert [d.run_id for d in listed] == [old]
    assert (await _rows(services, old))["runs"] == 1
    assert await purge.purge(services, timedelta(days=5), ["EXECUTOR_ERROR"]) == []
    # The admin command, as an operator runs it, on the same database.
    monkeypatch.setenv("FLOWDECK_DATA_DIR", str(services.settings.data_dir))
    monkeypatch.setenv("FLOWDECK_DATABASE_URL", services.settings.resolved_database_url)
    assert await asyncio.to_thread(cli_main, ["purge", "--older-than-days", "5"]) == 0
    assert "deleted 1 runs" in capsys.readouterr().out
    assert (await _rows(services, old))["runs"] == 0
    assert (await _rows(services, young))["runs"] == 1
    async with services.db.read() as conn:
        [audit] = await deletions.audit(conn, old)
    assert audit["actor"] == "flowdeck purge"
    assert audit["reason"].startswith("retention: ended more than 5 days ago")


async def test_the_worker_purges_on_its_schedule(api: httpx.AsyncClient, services: AppContext) -> None:
    old = await _demo_run(api, services)
    await _age(services, old, 3)
    folder = services.runs_dir / "gone-run"
    folder.mkdir(parents=True)
    services.settings.retention_days = 2
    await Worker(services).iterate()
    assert (await _rows(services, old))["runs"] == 0
    async with services.db.read() as conn:
        assert [a["actor"] for a in await deletions.audit(conn, old)] == ["worker"]
    assert folder.exists()  # a folder of no deleted run is left alone


def test_flowdeck_purge_needs_an_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("FLOWDECK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FLOWDECK_RETENTION_DAYS", raising=False)
    assert cli_main(["purge"]) == 2
    assert "--older-than-days" in capsys.readouterr().err
