"""Ending runs the worker gives up on: the watchdog (a silent engine) and broken runs.

The state changes first, then the engine is asked (best effort) to stop what it still runs of
the run, so a cancel that fails or hangs never keeps a run from ending, and no engine process
outlives its run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from flowdeck.backends.base import Backend
from flowdeck.domain.run_policy import watchdog_expired
from flowdeck.domain.runs import CancelResult, RunRecord
from flowdeck.domain.states import State
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.handles import handle_of
from flowdeck.services.runs import state_machine

log = logging.getLogger(__name__)
ACTOR = "worker"
# How long the watchdog waits for an engine to take a cancel; the run has ended already,
# so a hung engine must not hold the pass for longer.
WATCHDOG_CANCEL_SECONDS = 30.0


async def watchdog(services: AppContext, row: RunRecord, now: datetime, backend: Backend, pool: BlockingPool) -> None:
    """End a run whose engine has said nothing new for too long: no run stays RUNNING forever.

    Once the run has ended, its engine is asked to cancel it, counted in
    ``flowdeck_backend_errors{kind="watchdog_cancel"}`` when that fails."""
    last = row.last_progress_at or row.updated_at
    silent = (now - last).total_seconds()
    limit = services.settings.watchdog_seconds
    if not watchdog_expired(silent, limit):
        return
    message = f"no news from the engine for {silent:.0f}s (watchdog limit {limit:.0f}s)"
    if await _end(services, row, now, message, "watchdog"):
        # a run someone else moved meanwhile is theirs to stop, or alive
        await _cancel_ended(services, row, backend, pool, "watchdog")


async def end_broken(
    services: AppContext, row: RunRecord, now: datetime, error: str, failures: int, backend: Backend, pool: BlockingPool
) -> None:
    """End a run its backend fails on every time; whatever of it the engine still runs is asked to stop,
    as the watchdog does (the backend may fail on that too: counted as ``broken_cancel``)."""
    message = f"the {row.backend} backend failed on this run {failures} times in a row: {error}"
    if await _end(services, row, now, message, ACTOR):
        await _cancel_ended(services, row, backend, pool, "broken")


async def _end(services: AppContext, row: RunRecord, now: datetime, message: str, actor: str) -> bool:
    """Move the run to SYSTEM_ERROR from the state it was claimed in; False if it moved meanwhile."""
    async with services.db.write() as conn:
        return await state_machine.transition(
            conn,
            row.id,
            row.state,
            State.SYSTEM_ERROR,
            now=now,
            reason=message,
            actor=actor,
            fields={"error_message": message, "system_logs": [*row.system_logs, message]},
        )


async def _cancel_ended(services: AppContext, row: RunRecord, backend: Backend, pool: BlockingPool, why: str) -> None:
    """Ask the engine to stop a run the worker has ended (best effort, counted as ``{why}_cancel``)."""
    handle = handle_of(row, services.runs_dir)
    try:
        result: CancelResult = await asyncio.wait_for(pool.run(backend.cancel, handle), WATCHDOG_CANCEL_SECONDS)
    except Exception as exc:  # TimeoutError included: the engine is slow or away
        services.metrics.backend_errors.labels(backend.name, f"{why}_cancel").inc()
        log.warning("%s: cancel of run %s on %s failed: %r", why, row.id, backend.name, exc)
        return
    log.info("%s: asked %s to cancel run %s: %s", why, backend.name, row.id, result.message or "sent")
