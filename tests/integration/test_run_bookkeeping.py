"""flowdeck's own run bookkeeping (pipeline target, dataset, resumed run, cancel sent, dataset
inputs, call-cache input checksums) lives in its own columns: an engine's data, whatever keys it
carries, never touches it (docs/adr/0029); migration 0013 moved the keys of runs stored before out
of ``backend_data`` and left the stored-bytes triggers of 0012 in place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from flowdeck.backends import registry
from flowdeck.backends.demo import DemoBackend
from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import downgrade, upgrade
from flowdeck.db.tables import group_stored_bytes, runs
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.runs import CancelResult, RunHandle, RunRecord, RunSpec, Submitted, SyncReport
from flowdeck.domain.states import State
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import service as run_service
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker

# What an engine might well call its own keys: the names flowdeck's bookkeeping used to have.
CLASHING = {
    "pipeline_target": {"workflow": "the engine's"},
    "dataset": {"uri": "s3://engine/other"},
    "resume_from": "some-other-run",
    "cancel_sent": "2020-01-01T00:00:00+00:00",
    "input_datasets": {"/reads": "an-engines-dataset"},
    "cache_inputs": {"/reads": "sha256:engine"},
}
TARGET = {"workflow": "ours", "input": "reads"}
DATASET = {"uri": "file:///data/reads.fq", "name": "reads.fq"}


class ClashingBackend(DemoBackend):
    """The demo backend, whose submit and every sync report carry keys named like flowdeck's."""

    cancels: list[str] = []

    def submit(self, spec: RunSpec) -> Submitted:
        submitted = super().submit(spec)
        return Submitted(submitted.backend_run_id, {**submitted.backend_data, **CLASHING}, submitted.state)

    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        reports = super().sync(handles)
        return [
            SyncReport(run_id=r.run_id, state=r.state, tasks=r.tasks, backend_data={**h.backend_data, **CLASHING})
            for r, h in zip(reports, handles, strict=True)
        ]

    def cancel(self, handle: RunHandle) -> CancelResult:
        ClashingBackend.cancels.append(handle.run_id)
        return super().cancel(handle)


@pytest.fixture
async def clashing(db_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AppContext]:
    monkeypatch.setitem(registry.BACKENDS, "demo", f"{__name__}:ClashingBackend")
    ClashingBackend.cancels = []
    services = AppContext.create(db_settings)
    try:
        yield services
    finally:
        await services.close()


async def _submit(services: AppContext) -> str:
    new = run_service.NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_engine_parameters={"duration_seconds": "3600"},
        pipeline_target=TARGET,
        dataset=DATASET,
    )
    return await run_service.submit(services, new, LOCAL_USER)


async def _row(services: AppContext, run_id: str) -> RunRecord:
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
    assert row is not None
    return row


async def _due_now(services: AppContext, run_id: str) -> None:
    async with services.db.write() as conn:
        await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(next_check_at=None))


async def test_an_engines_keys_never_touch_flowdecks_bookkeeping(clashing: AppContext) -> None:
    worker = Worker(clashing)
    run_id = await _submit(clashing)
    await worker.iterate()  # dispatched: the engine's answer carries the clashing keys
    await _due_now(clashing, run_id)
    await worker.iterate()  # synced: so does its report
    row = await _row(clashing, run_id)
    assert row.state is State.RUNNING
    assert (row.pipeline_target, row.dataset, row.resume_from) == (TARGET, DATASET, None)
    assert (row.cancel_sent_at, row.input_datasets, row.cache_inputs) == (None, {}, {})
    assert {k: row.backend_data[k] for k in CLASHING} == CLASHING  # kept, as the engine's own

    # An engine's "cancel_sent" once made the worker believe the cancel had gone out already.
    await run_service.cancel(clashing, run_id, LOCAL_USER)
    await worker.iterate()
    row = await _row(clashing, run_id)
    assert ClashingBackend.cancels == [run_id]
    assert row.state is State.CANCELED
    assert row.cancel_sent_at is not None
    assert row.pipeline_target == TARGET


async def test_0013_moves_the_keys_of_stored_runs_and_steps_back(db_settings: Settings) -> None:
    services = AppContext.create(db_settings)
    stored = sa.select(runs.c.id, runs.c.backend_data)  # the columns every revision has
    sent = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    try:
        run_id = await _submit(services)
        await asyncio.to_thread(downgrade, db_settings, "0012")  # Alembic runs its own event loop
        await services.db.dispose()  # SQLite connections cache the dropped schema
        async with services.db.write() as conn:
            (_, folded), *_ = (await conn.execute(stored.where(runs.c.id == run_id))).all()
            assert folded == {"pipeline_target": TARGET, "dataset": DATASET}
            ours = {"input_datasets": {"/reads": "ds-1"}, "cache_inputs": {"/reads": "sha256:ab"}}
            old = folded | ours | {"resume_from": "an-ended-run", "cancel_sent": sent.isoformat(), "started": "engine"}
            await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(backend_data=old))
        await asyncio.to_thread(upgrade, db_settings)
        await services.db.dispose()
        row = await _row(services, run_id)
        assert row.backend_data == {"started": "engine"}
        assert (row.pipeline_target, row.dataset, row.resume_from) == (TARGET, DATASET, "an-ended-run")
        assert row.cancel_sent_at == sent
        assert (row.input_datasets, row.cache_inputs) == ({"/reads": "ds-1"}, {"/reads": "sha256:ab"})
        # 0013 added columns without rebuilding runs: 0012's triggers still count stored bytes.
        total = sa.select(sa.func.coalesce(sa.func.sum(group_stored_bytes.c.bytes), 0))
        async with services.db.write() as conn:
            before = (await conn.execute(total)).scalar_one()
            await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(stored_bytes=5))
            assert (await conn.execute(total)).scalar_one() == before + 5
    finally:
        await services.close()
