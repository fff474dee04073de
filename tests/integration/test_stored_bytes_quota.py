"""The stored-bytes quota (docs/quotas.md): the kept per-group byte count always equals the bytes
the runs' results records hold, through puts, live logs, deletes, purges, compaction and the
migration's backfill; a group at its quota is refused at every door until a run is deleted. On
SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ByteSize, TypeAdapter

from flowdeck.backends.registry import Registry, load_class
from flowdeck.db import run_counts
from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import downgrade, upgrade
from flowdeck.db.tables import runs
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.runs import purge, results
from flowdeck.services.runs import run_counts as run_count_service
from flowdeck.services.runs.attachments import run_folder
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import CWL, TERMINAL, WES, follow
from tests.integration.test_jobs_api import RNASEQ
from tests.integration.test_requests_api import body
from tests.integration.test_run_state_counts import _advance, _submit
from tests.integration.test_wes_api import demo_form

GROUP = "lab"


async def _truth(services: AppContext) -> tuple[dict[str, int], dict[str, int]]:
    """(bytes per group summed from every run's results record, the kept counts) — groups holding none left out."""
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(runs.c.research_group, runs.c.results))).all()
        measured: dict[str, int] = defaultdict(int)
        for group, record in rows:
            measured[group or ""] += results.stored_bytes(record)
        kept = {g: await run_counts.group_bytes(conn, g) for g in {*measured, "", GROUP, "other"}}
    return {g: n for g, n in measured.items() if n}, {g: n for g, n in kept.items() if n}


def _put(services: AppContext, run_id: str, sizes: list[int], live: bool = False) -> dict[str, Any]:
    """Files of these sizes in the run's folder, put into storage as the worker puts them: the record."""
    work = run_folder(services.runs_dir, run_id).work
    work.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(sizes):
        (work / f"out{i}.txt").write_bytes(b"x" * n)
    (work / "stdout.txt").write_bytes(b"log\n" * max(1, len(sizes)))
    run = SimpleNamespace(  # what results.put reads of a RunRecord
        outputs=None,
        output_files=[]
        if live
        else [{"name": f"out{i}.txt", "location": str(work / f"out{i}.txt")} for i in range(len(sizes))],
        stdout_path=str(work / "stdout.txt"),
        stderr_path=None,
    )
    record = results.put(storage_of(services), services.runs_dir, run_id, run, [])
    return {**record, "live": True} if live else record


async def _record(services: AppContext, run_id: str, record: dict[str, Any]) -> None:
    async with services.db.write() as conn:
        await run_rows.update(conn, run_id, results.recorded(record))


async def test_the_kept_bytes_equal_what_the_runs_hold(services: AppContext) -> None:
    first, second, other = [await _submit(services, g) for g in (GROUP, GROUP, "other")]
    loose = await _submit(services, None)
    await _record(services, first, await asyncio.to_thread(_put, services, first, [], live=True))
    await _record(services, first, await asyncio.to_thread(_put, services, first, [3000, 20]))  # the end replaces live
    await _record(services, second, await asyncio.to_thread(_put, services, second, [500]))
    await _record(services, other, await asyncio.to_thread(_put, services, other, [7]))
    await _record(services, loose, await asyncio.to_thread(_put, services, loose, [11]))
    measured, kept = await _truth(services)
    assert measured == kept
    assert kept[GROUP] == 3000 + 20 + 500 + 3 * 4
    assert await run_count_service.compact(services)
    assert await _truth(services) == (measured, kept)
    for run_id in (first, second, other, loose):
        await _advance(services, run_id, 3)
    async with services.db.read() as conn:
        ended = await run_rows.get(conn, first)
    assert ended is not None
    gone = await purge.remove(services, ended, actor="test", reason="quota test")
    assert gone.bytes == 3000 + 20 + 8
    measured, kept = await _truth(services)
    assert measured == kept
    assert kept[GROUP] == 500 + 4
    async with services.db.write() as conn:  # an old run, ended long ago: the purge takes it
        await conn.execute(sa.update(runs).where(runs.c.id == second).values(end_time=utcnow() - timedelta(days=9)))
    assert [d.run_id for d in await purge.purge(services, timedelta(days=5), ["COMPLETE"])] == [second]
    assert await _truth(services) == ({"other": 7 + 4, "": 11 + 4}, {"other": 7 + 4, "": 11 + 4})


async def test_0012_counts_the_bytes_already_stored(services: AppContext) -> None:
    first, second = await _submit(services, GROUP), await _submit(services, None)
    records = {
        first: await asyncio.to_thread(_put, services, first, [100, 1]),
        second: await asyncio.to_thread(_put, services, second, [9]),
    }
    settings = services.settings
    await asyncio.to_thread(downgrade, settings, "0009")
    await services.db.dispose()  # SQLite connections cache the dropped schema
    async with services.db.write() as conn:  # results recorded while nothing counted them
        for run_id, record in records.items():
            await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(results=record))
    await asyncio.to_thread(upgrade, settings)
    await services.db.dispose()
    measured, kept = await _truth(services)
    assert measured == kept == {GROUP: 100 + 1 + 8, "": 9 + 4}


async def test_a_group_at_its_quota_is_refused_at_every_door_until_a_run_is_deleted(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    services.settings.group_max_stored_bytes = {GROUP: TypeAdapter(ByteSize).validate_python("1KB")}
    run_id = await _submit(services, GROUP)
    await _record(services, run_id, await asyncio.to_thread(_put, services, run_id, [400]))
    await _advance(services, run_id, 3)
    form = {**demo_form(), "research_group": GROUP}
    assert (await api.post(f"{WES}/runs", data=form)).status_code == 200  # 404 bytes: under the quota
    await _record(services, run_id, await asyncio.to_thread(_put, services, run_id, [1000]))
    usage = (await api.get(f"/groups/{GROUP}/usage")).json()
    assert (usage["stored_bytes"], usage["max_stored_bytes"]) == (1004, 1000)

    wes = await api.post(f"{WES}/runs", data=form)
    assert wes.status_code == 403, wes.text
    assert wes.json()["status_code"] == 403
    assert "1004 bytes in storage, at or over its quota of 1000 bytes" in wes.json()["msg"]
    assert "DELETE /ga4gh/wes/v1/runs/" in wes.json()["msg"]
    job = {**RNASEQ, "pipeline_version": "1.0.0", "research_group": GROUP}  # the demo simulation
    jobs = await api.post("/jobs", json=job)
    assert jobs.status_code == 403, jobs.text
    assert jobs.headers["content-type"] == "application/problem+json"
    problem = jobs.json()
    assert (problem["quota"], problem["stored_bytes"], problem["max_stored_bytes"]) == (
        "group_max_stored_bytes",
        1004,
        1000,
    )
    requests = await api.post("/requests", json=body(2, research_group=GROUP))
    assert requests.status_code == 403, requests.text
    assert "FLOWDECK_GROUP_MAX_STORED_BYTES" in requests.json()["detail"]
    assert (await api.post(f"{WES}/runs", data={**form, "research_group": "other"})).status_code == 200

    assert (await api.delete(f"/jobs/{run_id}")).status_code == 200
    assert (await api.get(f"/groups/{GROUP}/usage")).json()["stored_bytes"] == 0
    assert (await api.post("/jobs", json=job)).status_code in (201, 202)


@pytest.mark.engine
async def test_a_real_runs_results_are_counted_when_the_worker_stores_them(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    if not load_class("cwltool").available():
        pytest.skip("cwltool is not installed")
    if not services.settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("the engine run is on SQLite; the counting triggers are tested on every database above")
    services.settings.backends = ["demo", "cwltool"]
    services.backends = Registry(services.settings)
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "two_step.cwl",
        "workflow_params": json.dumps({"message": "count me"}),
        "research_group": GROUP,
    }
    files = {"workflow_attachment": ("two_step.cwl", CWL.read_bytes())}
    answer = await api.post(f"{WES}/runs", data=form, files=files)
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["run_id"]
    assert await follow(api, Worker(services), run_id, TERMINAL) == "COMPLETE"
    stored = (await api.get(f"/groups/{GROUP}/usage")).json()["stored_bytes"]
    assert stored == results.stored_bytes(await _results(services, run_id)) > 0
    measured, kept = await _truth(services)
    assert measured == kept == {GROUP: stored}


async def _results(services: AppContext, run_id: str) -> Any:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(runs.c.results).where(runs.c.id == run_id))).scalar_one()
