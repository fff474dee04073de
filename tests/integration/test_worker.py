"""The worker: dispatch once only, lease takeover, isolation of broken runs, sync passes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.db.tables import events, runs
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.service import NewRun, submit
from flowdeck.worker.loop import Worker


async def new_run(services: AppContext, **engine: str) -> str:
    spec = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_engine_parameters=dict(engine),
    )
    return await submit(services, spec, LOCAL_USER)


async def states(services: AppContext) -> dict[str, str]:
    async with services.db.read() as conn:
        result = await conn.execute(sa.select(runs.c.id, runs.c.state))
        return {row.id: row.state for row in result}


async def until_all(services: AppContext, workers: list[Worker], done: set[str], rounds: int = 300) -> dict[str, str]:
    for _ in range(rounds):
        await asyncio.gather(*(w.iterate() for w in workers))
        current = await states(services)
        if all(s in done for s in current.values()):
            return current
        await asyncio.sleep(0.02)
    raise AssertionError(f"runs did not finish: {current}")


async def test_two_workers_never_dispatch_a_run_twice(services: AppContext) -> None:
    ids = [await new_run(services, duration_seconds="0.2") for _ in range(24)]
    # Two workers, each with its own connections, as two processes would have.
    other = AppContext.create(services.settings)
    try:
        workers = [Worker(services), Worker(other)]
        await until_all(services, workers, {"COMPLETE"})
    finally:
        await other.close()
    async with services.db.read() as conn:
        result = await conn.execute(
            sa.select(events.c.run_id, sa.func.count())
            .where(events.c.to_state == "INITIALIZING")
            .group_by(events.c.run_id)
        )
        dispatched = dict(result.all())
    assert dispatched == dict.fromkeys(ids, 1)


async def test_an_expired_lease_is_taken_over(services: AppContext) -> None:
    """A worker died after claiming a run and moving it to INITIALIZING; another finishes the job."""
    run_id = await new_run(services, duration_seconds="0.1")
    now = utcnow()
    async with services.db.write() as conn:
        claimed = await run_rows.claim(
            conn,
            states=[State.QUEUED],
            owner="dead-worker",
            now=now,
            lease=timedelta(seconds=30),
            limit=5,
            postgres=services.db.is_postgres,
        )
        assert [r.id for r in claimed] == [run_id]
        await state_machine.transition(conn, run_id, State.QUEUED, State.INITIALIZING, now=now)
    survivor = Worker(services)
    await survivor.iterate()
    assert (await states(services))[run_id] == "INITIALIZING"  # the dead worker's lease still holds
    async with services.db.write() as conn:
        await conn.execute(
            sa.update(runs).where(runs.c.id == run_id).values(lease_expires_at=now - timedelta(seconds=1))
        )
    final = await until_all(services, [survivor], {"COMPLETE"})
    assert final[run_id] == "COMPLETE"


async def test_one_broken_run_does_not_stop_the_others(services: AppContext) -> None:
    good = await new_run(services, duration_seconds="0.1")
    # Long enough that it cannot complete before its record is corrupted, on a loaded machine too
    # (with 0.1 s it was sometimes COMPLETE after the first iteration): it must end by failed checks.
    broken = await new_run(services, duration_seconds="30")
    worker = Worker(services)
    await worker.iterate()  # both dispatched
    async with services.db.write() as conn:  # corrupt one run's engine record
        await run_rows.update(conn, broken, {"backend_data": {"started": "not a time"}})
    services.settings.max_failed_checks = 3
    final = await until_all(services, [worker], {"COMPLETE", "SYSTEM_ERROR"})
    assert final == {good: "COMPLETE", broken: "SYSTEM_ERROR"}
    async with services.db.read() as conn:
        row = await run_rows.get(conn, broken)
    assert row is not None
    assert "failed on this run 3 times" in row.error_message


async def test_sync_pass_checks_every_active_run_once(services: AppContext) -> None:
    ids = [await new_run(services, duration_seconds="0") for _ in range(5)]
    services.settings.sync_min_seconds = 3600  # nothing is due again by itself during this test
    worker = Worker(services)
    await worker.iterate()  # dispatch; next checks are scheduled an hour ahead
    assert await worker.sync_pass() == 5
    assert set((await states(services)).values()) == {"COMPLETE"}
    assert await worker.sync_pass() == 0
    async with services.db.read() as conn:
        trail = await event_rows.for_run(conn, ids[0])
    assert [e["to_state"] for e in trail] == ["QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"]


async def test_watchdog_ends_a_silent_run(services: AppContext) -> None:
    run_id = await new_run(services, duration_seconds="3600")
    worker = Worker(services)
    await worker.iterate()
    async with services.db.write() as conn:
        await conn.execute(
            sa.update(runs).where(runs.c.id == run_id).values(last_progress_at=utcnow() - timedelta(days=30))
        )
    services.settings.watchdog_seconds = 60
    await worker.sync_pass()
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
    assert row is not None
    assert row.state == "SYSTEM_ERROR"
    assert "watchdog" in row.error_message


class Observed(Worker):
    """A worker that reports each iteration's result, so a test knows when it went idle."""

    def __init__(self, services: AppContext) -> None:
        super().__init__(services)
        self.rounds: asyncio.Queue[int] = asyncio.Queue()

    async def iterate(self) -> int:
        done = await super().iterate()
        self.rounds.put_nowait(done)
        return done


async def test_a_new_run_wakes_an_idle_worker(services: AppContext) -> None:
    """In one process (flowdeck up) a submission ends the worker's idle sleep: no poll-interval wait."""
    services.settings.worker_poll_seconds = 3600  # without the wake-up the run would wait an hour
    worker, stop = Observed(services), asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        while await asyncio.wait_for(worker.rounds.get(), 60):
            pass  # until a round found nothing to do: the worker is asleep
        run_id = await new_run(services, duration_seconds="0.1")
        await asyncio.wait_for(worker.rounds.get(), 60)
        assert (await states(services))[run_id] != "QUEUED"
    finally:
        stop.set()
        await task
