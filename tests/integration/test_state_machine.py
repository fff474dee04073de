"""Compare-and-set transitions and their events, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.service import NewRun, submit


async def new_run(services: AppContext) -> str:
    return await submit(
        services, NewRun(workflow_type="DEMO", workflow_type_version="1.0", workflow_url="demo://x"), LOCAL_USER
    )


async def state_of(services: AppContext, run_id: str) -> str:
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
    assert row is not None
    return str(row.state)


async def test_transition_writes_one_event_and_bumps_the_version(services: AppContext) -> None:
    run_id = await new_run(services)
    async with services.db.write() as conn:
        assert await state_machine.transition(
            conn, run_id, State.QUEUED, State.INITIALIZING, now=utcnow(), reason="r", actor="t"
        )
    async with services.db.read() as conn:
        row = await run_rows.get(conn, run_id)
        trail = await event_rows.for_run(conn, run_id)
    assert row is not None
    assert row.state == "INITIALIZING"
    assert row.state_version == 1
    assert [(e["from_state"], e["to_state"]) for e in trail] == [(None, "QUEUED"), ("QUEUED", "INITIALIZING")]
    assert trail[1]["actor"] == "t"


async def test_a_stale_expected_state_changes_nothing(services: AppContext) -> None:
    run_id = await new_run(services)
    async with services.db.write() as conn:
        assert not await state_machine.transition(conn, run_id, State.RUNNING, State.COMPLETE, now=utcnow())
    assert await state_of(services, run_id) == "QUEUED"


async def test_illegal_transitions_are_refused_before_touching_the_database(services: AppContext) -> None:
    run_id = await new_run(services)
    async with services.db.write() as conn:
        with pytest.raises(state_machine.IllegalTransition):
            await state_machine.transition(conn, run_id, State.QUEUED, State.COMPLETE, now=utcnow())


async def test_terminal_runs_stay_terminal(services: AppContext) -> None:
    run_id = await new_run(services)
    now = utcnow()
    async with services.db.write() as conn:
        for a, b in (
            (State.QUEUED, State.INITIALIZING),
            (State.INITIALIZING, State.RUNNING),
            (State.RUNNING, State.COMPLETE),
        ):
            assert await state_machine.transition(conn, run_id, a, b, now=now)
    for target in (State.RUNNING, State.CANCELING, State.SYSTEM_ERROR):
        async with services.db.write() as conn:
            with pytest.raises(state_machine.IllegalTransition):
                await state_machine.transition(conn, run_id, State.COMPLETE, target, now=now)
    assert await state_of(services, run_id) == "COMPLETE"


async def test_concurrent_writers_one_wins(services: AppContext) -> None:
    """Ten writers race the same QUEUED run to different states: exactly one succeeds."""
    run_id = await new_run(services)

    async def attempt(target: State) -> bool:
        async with services.db.write() as conn:
            return await state_machine.transition(conn, run_id, State.QUEUED, target, now=utcnow())

    targets = [State.INITIALIZING, State.CANCELING, State.SYSTEM_ERROR] * 4
    results = await asyncio.gather(*(attempt(t) for t in targets))
    assert sum(results) == 1
    async with services.db.read() as conn:
        trail = await event_rows.for_run(conn, run_id)
    assert len(trail) == 2
