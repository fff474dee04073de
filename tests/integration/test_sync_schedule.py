"""When runs are looked at again: a backend's fast window (Galaxy's, issue 22), and an idle worker
waking for the soonest due run instead of sleeping its whole ``worker_poll_seconds``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.db import runs as run_rows
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.sync import next_interval, seconds_until_due
from flowdeck.services.runs.service import NewRun, submit
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker


async def _run(services: AppContext, seconds: str) -> str:
    spec = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_engine_parameters={"duration_seconds": seconds},
    )
    return await submit(services, spec, LOCAL_USER)


async def test_a_galaxy_run_is_checked_often_in_its_fast_window_only(services: AppContext) -> None:
    services.settings.sync_min_seconds, services.settings.sync_max_seconds = 2.0, 60.0
    run_id = await _run(services, "60")
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
    assert row is not None
    galaxy = GalaxyBackend(Settings(galaxy_fast_sync_seconds=30, galaxy_fast_sync_interval=0.5))
    young, old = row.created_at + timedelta(seconds=5), row.created_at + timedelta(seconds=300)
    assert next_interval(services, row, young, galaxy) == 0.5
    assert next_interval(services, row, young) == 2.0  # a backend without a window: the general rule
    assert next_interval(services, row, old, galaxy) == next_interval(services, row, old) == 30.0
    assert GalaxyBackend(Settings(galaxy_fast_sync_seconds=0)).fast_sync() is None


async def test_an_idle_worker_wakes_when_a_run_is_due(services: AppContext) -> None:
    """With an hour's idle sleep, a running run is still checked on its own schedule (sync_min_seconds
    of the test settings): the worker sleeps only until the soonest run is due."""
    services.settings.worker_poll_seconds = 3600
    run_id = await _run(services, "0.5")
    worker, stop = Worker(services), asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(600):
            async with services.db.read() as conn:
                row = await run_rows.get(conn, run_id)
            assert row is not None
            if row.state == "COMPLETE":
                break
            await asyncio.sleep(0.05)
        assert row.state == "COMPLETE", row.state
        assert await seconds_until_due(services) is None  # nothing left to wait for
    finally:
        stop.set()
        await task
