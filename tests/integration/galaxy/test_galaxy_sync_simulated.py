"""The Galaxy state mapping, and sync (batched, and polling each invocation) against
bench/fake_galaxy.py, alone and through the worker: quick, no real Galaxy. Request counts
and the most requests in flight come from the fake; nothing here is timed."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from bench.fake_galaxy import FakeGalaxy
from pydantic import SecretStr

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.backends.galaxy.state import run_state
from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.db.tables import events, runs, tasks
from flowdeck.domain.runs import RunHandle, SyncReport
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("invocation", "jobs", "all_scheduled", "expected"),
    [
        ("new", {}, False, State.INITIALIZING),
        ("ready", {"queued": 1}, False, State.RUNNING),
        ("scheduled", {"ok": 1, "running": 1}, True, State.RUNNING),
        ("scheduled", {"ok": 2}, True, State.COMPLETE),
        ("completed", {"ok": 1, "skipped": 1}, True, State.COMPLETE),
        ("scheduled", {"ok": 2}, False, State.RUNNING),  # steps still to schedule
        ("scheduled", {"error": 1, "running": 1}, True, State.RUNNING),  # let the rest settle
        ("scheduled", {"error": 1, "paused": 1}, True, State.EXECUTOR_ERROR),
        ("ready", {"ok": 1, "paused": 1}, False, State.EXECUTOR_ERROR),
        ("failed", {}, False, State.EXECUTOR_ERROR),
        ("cancelling", {"running": 1}, False, State.CANCELING),
        ("cancelled", {"deleting": 1}, False, State.CANCELING),
        ("cancelled", {"deleted": 1, "ok": 1}, False, State.CANCELED),
    ],
)
def test_run_state(invocation: str, jobs: dict[str, int], all_scheduled: bool, expected: State) -> None:
    assert run_state(invocation, jobs, all_scheduled).state is expected


@pytest.fixture
def fake() -> Iterator[FakeGalaxy]:
    with FakeGalaxy(invocations=300, latency=0.01, min_seconds=600, max_seconds=900).running() as server:
        yield server


def settle(handles: list[RunHandle], reports: list[SyncReport]) -> list[RunHandle]:
    by_run = {report.run_id: report for report in reports}
    out = []
    for handle in handles:
        report = by_run[handle.run_id]
        if report.state is not None:
            data = report.backend_data or handle.backend_data
            handle = RunHandle(handle.run_id, handle.backend_run_id, data, handle.workdir, report.state)
        out.append(handle)
    return out


def test_a_pass_over_unchanged_runs_costs_only_batched_calls(fake: FakeGalaxy, tmp_path: Path) -> None:
    backend = GalaxyBackend(Settings(galaxy_url=fake.url, galaxy_api_key=fake.api_key, data_dir=tmp_path))
    handles = fake.handles(tmp_path)
    handles = settle(handles, backend.sync(handles))  # first pass reads every run once
    fake.requests.clear()

    reports = backend.sync(handles)

    assert all(r.state is None and r.transient_error is None for r in reports)
    assert set(fake.requests) <= {"api/invocations", "api/histories/{id}/jobs_summary"}, fake.requests
    assert fake.requests["api/histories/{id}/jobs_summary"] == 2  # 300 runs, 150 per call


def test_galaxy_unreachable_is_transient_for_every_run(tmp_path: Path) -> None:
    with FakeGalaxy(invocations=5, latency=0).running() as fake:
        handles = fake.handles(tmp_path)
        url = fake.url
    backend = GalaxyBackend(Settings(galaxy_url=url, galaxy_api_key=fake.api_key, data_dir=tmp_path))

    reports = backend.sync(handles)

    assert len(reports) == 5
    assert all(r.state is None and "unreachable" in (r.transient_error or "") for r in reports), reports
    assert all(r.retry_after for r in reports)


# --- polling each invocation (galaxy_batch_listing off), and the worker's pass over Galaxy runs

SCHEDULED = {"min_seconds": 6000.0, "max_seconds": 9000.0, "started_ago": 1200.0}  # all "scheduled", jobs running


def backend_for(fake: FakeGalaxy, tmp_path: Path, **settings: Any) -> GalaxyBackend:
    return GalaxyBackend(Settings(galaxy_url=fake.url, galaxy_api_key=fake.api_key, data_dir=tmp_path, **settings))


def test_polling_each_invocation_costs_one_summary_per_run_once_scheduled(tmp_path: Path) -> None:
    with FakeGalaxy(invocations=120, latency=0.005, **SCHEDULED).running() as fake:
        backend = backend_for(fake, tmp_path, galaxy_batch_listing=False, sync_concurrency=4)
        handles = fake.handles(tmp_path)
        first = backend.sync(handles)
        # first sight: the summary, the invocation and its jobs, for every run
        assert fake.requests == {
            "api/invocations/{id}/jobs_summary": 120,
            "api/invocations/{id}": 120,
            "api/jobs": 120,
        }, fake.requests
        assert {r.state for r in first} == {State.RUNNING}
        handles = settle(handles, first)
        fake.reset_counts()

        again = backend.sync(handles)

        assert all(r.state is None and r.transient_error is None for r in again), again
        assert fake.requests == {"api/invocations/{id}/jobs_summary": 120}, fake.requests
        assert 1 < fake.max_in_flight <= 4  # parallel, and never past sync_concurrency


def test_polling_reads_the_invocation_too_while_galaxy_is_scheduling_it(fake: FakeGalaxy, tmp_path: Path) -> None:
    backend = backend_for(fake, tmp_path, galaxy_batch_listing=False)
    handles = settle(fake.handles(tmp_path), backend.sync(fake.handles(tmp_path)))
    assert {h.state for h in handles} == {State.INITIALIZING}  # invocations still "new"
    fake.reset_counts()

    again = backend.sync(handles)

    assert all(r.state is None and r.transient_error is None for r in again)
    assert fake.requests == {"api/invocations/{id}/jobs_summary": 300, "api/invocations/{id}": 300}, fake.requests


@pytest.mark.parametrize("batch_listing", [True, False])
def test_concurrent_sync_calls_share_one_bound(batch_listing: bool, tmp_path: Path) -> None:
    with FakeGalaxy(invocations=200, latency=0.005, **SCHEDULED).running() as fake:
        backend = backend_for(fake, tmp_path, galaxy_batch_listing=batch_listing, sync_concurrency=3)
        handles = fake.handles(tmp_path)
        with ThreadPoolExecutor(4) as callers:  # as a worker with two pages in flight, and more
            reports = [r for part in callers.map(backend.sync, [handles[i::4] for i in range(4)]) for r in part]
        assert len(reports) == 200
        assert all(r.transient_error is None for r in reports)
        assert 1 < fake.max_in_flight <= 3


# --- through the worker: a whole `flowdeck sync --once` pass over Galaxy runs in the database


async def galaxy_runs(services: AppContext, fake: FakeGalaxy) -> list[str]:
    """One RUNNING run per invocation of the fake, as dispatch leaves them."""
    now = utcnow()
    ids = []
    async with services.db.write() as conn:
        for inv in fake.invocations:
            run_id = f"run-{inv.index:05d}"
            ids.append(run_id)
            await run_rows.insert(
                conn,
                {
                    "id": run_id,
                    "workflow_type": "GALAXY",
                    "workflow_type_version": "gxformat2",
                    "workflow_url": "flowdeck_sort_upper",
                    "workflow_params": {},
                    "workflow_engine_parameters": {},
                    "tags": {},
                    "attachments": [],
                    "backend": "galaxy",
                    "backend_run_id": inv.id,
                    "backend_data": {
                        "galaxy_url": fake.url,
                        "history_id": inv.history_id,
                        "invocation_id": inv.id,
                        "invocation_state": "scheduled",
                    },
                    "state": State.RUNNING.value,
                    "system_logs": [],
                    "created_at": now,
                    "updated_at": now,
                    "start_time": now,
                    "last_progress_at": now,
                },
            )
    return ids


async def snapshot(services: AppContext) -> tuple[list[Any], list[Any], int]:
    """Everything a pass may write about runs (not leases and next checks)."""
    async with services.db.read() as conn:
        run_rows_now = (
            await conn.execute(
                sa.select(
                    runs.c.id,
                    runs.c.state,
                    runs.c.state_version,
                    runs.c.backend_data,
                    runs.c.system_logs,
                    runs.c.updated_at,
                    runs.c.last_progress_at,
                    runs.c.check_failures,
                    runs.c.last_check_error,
                ).order_by(runs.c.id)
            )
        ).all()
        task_rows = (await conn.execute(sa.select(tasks).order_by(tasks.c.id))).all()
        event_count = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one()
    return list(run_rows_now), list(task_rows), int(event_count)


@pytest.fixture
def scheduled_fake() -> Iterator[FakeGalaxy]:
    with FakeGalaxy(invocations=60, latency=0.005, **SCHEDULED).running() as server:
        yield server


def galaxy_services(fake: FakeGalaxy, tmp_path: Path, base: Settings | None = None, **overrides: Any) -> AppContext:
    """AppContext with the galaxy backend on the fake: on ``base``'s migrated database, or a new SQLite one."""
    values = {"backends": ["galaxy"], "galaxy_url": fake.url, "galaxy_api_key": fake.api_key, "sync_batch": 25}
    values.update(overrides)
    if base is not None:
        return AppContext.create(base.model_copy(update={**values, "galaxy_api_key": SecretStr(fake.api_key)}))
    settings = make_settings(tmp_path, **values)
    upgrade(settings)
    return AppContext.create(settings)


@pytest.mark.parametrize("batch_listing", [True, False])
async def test_a_second_pass_with_no_change_writes_nothing(
    scheduled_fake: FakeGalaxy, tmp_path: Path, db_settings: Settings, batch_listing: bool
) -> None:
    services = galaxy_services(
        scheduled_fake, tmp_path, db_settings, galaxy_batch_listing=batch_listing, sync_concurrency=4
    )
    try:
        ids = await galaxy_runs(services, scheduled_fake)
        worker = Worker(services)
        assert await worker.sync_pass() == 60  # 3 pages of 25, two in flight at a time
        first = await snapshot(services)
        assert len(first[1]) == 120  # two jobs per run became tasks
        assert {row.backend_data["fingerprint"] for row in first[0]} != {None}
        scheduled_fake.reset_counts()

        checked = await worker.sync_pass()
        if db_settings.resolved_database_url.startswith("mysql"):
            # InnoDB's SKIP LOCKED can pass over a run beside one the other page in flight has
            # locked (next-key locks); that run is checked in the next pass, as in production.
            assert 55 <= checked <= 60
        else:
            assert checked == 60

        assert await snapshot(services) == first
        assert 1 < scheduled_fake.max_in_flight <= 4
        if not batch_listing:
            assert scheduled_fake.requests == {"api/invocations/{id}/jobs_summary": 60}
        async with services.db.read() as conn:
            leased = await conn.execute(
                sa.select(sa.func.count()).select_from(runs).where(runs.c.id.in_(ids), runs.c.lease_owner.is_not(None))
            )
            assert leased.scalar_one() == 0  # every lease given back
    finally:
        await services.close()


@pytest.mark.parametrize(("status", "batch_listing"), [(500, False), (503, False), (502, True)])
async def test_galaxy_errors_never_change_a_run_and_are_counted(
    scheduled_fake: FakeGalaxy, tmp_path: Path, status: int, batch_listing: bool
) -> None:
    services = galaxy_services(scheduled_fake, tmp_path, galaxy_batch_listing=batch_listing, max_failed_checks=2)
    try:
        await galaxy_runs(services, scheduled_fake)
        worker = Worker(services)
        await worker.sync_pass()
        broken = scheduled_fake.invocations[7]
        scheduled_fake.failing[broken.id] = status
        before = await snapshot(services)

        for _ in range(3):  # more failures than max_failed_checks: Galaxy's own errors never end a run
            await worker.sync_pass()

        async with services.db.read() as conn:
            row = await run_rows.get(conn, f"run-{broken.index:05d}")
        assert row is not None
        assert row.state == State.RUNNING.value
        assert row.check_failures == 3
        assert f"HTTP {status}" in row.last_check_error
        assert row.next_check_at > utcnow()  # backed off
        after = await snapshot(services)
        assert after[1:] == before[1:]  # no task, no event
        errors = services.metrics.registry.get_sample_value(
            "flowdeck_backend_errors_total", {"backend": "galaxy", "kind": "run_check"}
        )
        # batched: the summary chunk the failing id spoils is read again run by run
        assert errors == 3

        scheduled_fake.failing.clear()
        await worker.sync_pass()
        async with services.db.read() as conn:
            row = await run_rows.get(conn, f"run-{broken.index:05d}")
        assert row is not None
        assert (row.state, row.check_failures, row.last_check_error) == ("RUNNING", 0, None)
    finally:
        await services.close()
