"""The watchdog ends a silent run and asks its engine to stop it; a cancel that fails or hangs
is counted and never keeps the run from ending (services/execution/watchdog.py). A run the backend fails on
every time is ended and stopped the same way."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
import sqlalchemy as sa

from flowdeck.backends import registry
from flowdeck.backends.demo import DemoBackend
from flowdeck.db import runs as run_rows
from flowdeck.db.tables import runs
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.runs import CancelResult, RunHandle, SyncReport
from flowdeck.errors import EngineUnavailable
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution import watchdog
from flowdeck.services.runs.service import NewRun, submit
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker


class RecordingBackend(DemoBackend):
    """The demo backend, with every cancel it is asked for recorded, and a way to make it fail."""

    cancels: list[str] = []
    failure: Exception | None = None
    sync_failure: Exception | None = None
    release = threading.Event()

    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        if RecordingBackend.sync_failure is not None:
            raise RecordingBackend.sync_failure
        return super().sync(handles)

    def cancel(self, handle: RunHandle) -> CancelResult:
        RecordingBackend.cancels.append(handle.run_id)
        if RecordingBackend.failure is not None:
            raise RecordingBackend.failure
        if not RecordingBackend.release.is_set():
            RecordingBackend.release.wait(5)  # a hung engine; the test lets it go when done
        return super().cancel(handle)


@pytest.fixture
async def recording(db_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AppContext]:
    monkeypatch.setitem(registry.BACKENDS, "demo", f"{__name__}:RecordingBackend")
    RecordingBackend.cancels = []
    RecordingBackend.failure = None
    RecordingBackend.sync_failure = None
    RecordingBackend.release.set()
    services = AppContext.create(db_settings)
    try:
        yield services
    finally:
        RecordingBackend.release.set()
        await services.close()


async def silent_run(services: AppContext, worker: Worker) -> str:
    spec = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_engine_parameters={"duration_seconds": "3600"},
    )
    run_id = await submit(services, spec, LOCAL_USER)
    await worker.iterate()  # dispatched: RUNNING on the engine
    async with services.db.write() as conn:
        await conn.execute(
            sa.update(runs).where(runs.c.id == run_id).values(last_progress_at=utcnow() - timedelta(days=30))
        )
    services.settings.watchdog_seconds = 60
    return run_id


async def ended(services: AppContext, run_id: str) -> tuple[str, str]:
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
    assert row is not None
    return row.state, row.error_message


def cancel_errors(services: AppContext, kind: str = "watchdog_cancel") -> float:
    value = services.metrics.registry.get_sample_value(
        "flowdeck_backend_errors_total", {"backend": "demo", "kind": kind}
    )
    return value or 0.0


async def test_the_watchdog_asks_the_engine_to_cancel_the_run_it_ends(recording: AppContext) -> None:
    worker = Worker(recording)
    run_id = await silent_run(recording, worker)

    await worker.sync_pass()

    state, message = await ended(recording, run_id)
    assert state == "SYSTEM_ERROR"
    assert "watchdog" in message
    assert RecordingBackend.cancels == [run_id]
    assert cancel_errors(recording) == 0


async def test_a_failing_cancel_is_counted_and_the_run_still_ends(recording: AppContext) -> None:
    worker = Worker(recording)
    run_id = await silent_run(recording, worker)
    RecordingBackend.failure = EngineUnavailable("the engine is away")

    await worker.sync_pass()

    assert (await ended(recording, run_id))[0] == "SYSTEM_ERROR"
    assert RecordingBackend.cancels == [run_id]
    assert cancel_errors(recording) == 1


async def test_a_hung_cancel_is_given_up_on_and_the_run_still_ends(
    recording: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = Worker(recording)
    run_id = await silent_run(recording, worker)
    monkeypatch.setattr(watchdog, "WATCHDOG_CANCEL_SECONDS", 0.05)
    RecordingBackend.release.clear()

    await worker.sync_pass()

    assert (await ended(recording, run_id))[0] == "SYSTEM_ERROR"
    assert RecordingBackend.cancels == [run_id]
    assert cancel_errors(recording) == 1


async def test_a_run_the_backend_always_fails_on_is_ended_and_stopped(recording: AppContext) -> None:
    worker = Worker(recording)
    run_id = await silent_run(recording, worker)
    recording.settings.watchdog_seconds = 10**9  # not the watchdog: the failed checks end it
    recording.settings.max_failed_checks = 1
    RecordingBackend.sync_failure = RuntimeError("the backend chokes on this run")

    await worker.sync_pass()

    state, message = await ended(recording, run_id)
    assert state == "SYSTEM_ERROR"
    assert "failed on this run 1 times in a row" in message
    assert RecordingBackend.cancels == [run_id]
    assert cancel_errors(recording, "broken_cancel") == 0
