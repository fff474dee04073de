"""Handing one claimed run to its engine and recording the outcome.

Used by the worker for every queued run and by the jobs API for the bounded
inline dispatch of seed 000. The run must already be leased by ``owner``. The
engine call happens outside any transaction; if the caller dies between the
claim and the record, the lease expires and a worker takes the run over, and
backends' submit is idempotent per run id, so the engine never gets it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from flowdeck.backends.base import Backend
from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.run_policy import dispatch_failure_state, failed_dispatch_end
from flowdeck.domain.runs import RunRecord, RunSpec, Submitted
from flowdeck.domain.states import State
from flowdeck.errors import FlowdeckError
from flowdeck.services.core import url_policy
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import fetchable_spec
from flowdeck.services.datasets import inputs as dataset_inputs
from flowdeck.services.execution import staging
from flowdeck.services.execution.handles import prepare_spec
from flowdeck.services.execution.sync import next_interval
from flowdeck.services.runs import call_cache, state_machine
from flowdeck.services.runs.attachments import Attachment, RunFolder, run_folder
from flowdeck.services.runs.service import stored_attachments

log = logging.getLogger(__name__)
_T = TypeVar("_T")
ACTOR = "worker"


async def dispatch_run(services: AppContext, owner: str, pool: BlockingPool, row: RunRecord) -> None:
    """Submit one claimed run and record the outcome; never raises."""
    run_id = row.id
    try:
        if row.state is State.QUEUED:
            async with services.db.write() as conn:
                if not await state_machine.transition(
                    conn,
                    run_id,
                    State.QUEUED,
                    State.INITIALIZING,
                    now=utcnow(),
                    reason="claimed by a worker",
                    actor=ACTOR,
                ):
                    await run_rows.release(conn, run_id, owner, utcnow())
                    return
        backend = services.backends.get(row.backend)
        files = await stored_attachments(services, row)
        spec = prepare_spec(row, services.runs_dir)
        remote = url_policy.remote_references([spec.dataset, *spec.workflow_params.values()])
        if remote:  # most runs have none: no thread hop for them
            await asyncio.to_thread(url_policy.check_run_references, services.settings, remote)
        spec = await fetchable_spec(services.settings, spec)
        inputs = staging.find(spec) if backend.runs_locally else []
        folder = run_folder(services.runs_dir, run_id)
        if inputs:  # before the engine starts: it reads local copies (services.staging)
            inputs = await dataset_inputs.resolve_for_staging(services, inputs)
            staged = await _holding_lease(
                services, owner, pool.run(staging.fetch, services.settings, spec, inputs, row.research_group)
            )
            spec = staging.localized(spec, inputs)
            await _record_staged(services, run_id, staged)
            await call_cache.check_staged(services, row, staged)
        submitted = await pool.run(_start, backend, spec, folder, files)
    except FlowdeckError as exc:
        target = dispatch_failure_state(exc.run_failure)
        if target is None:
            await _retry_later(services, owner, row, str(exc))
        else:
            await _fail(services, row, target, exc.detail)
        return
    except Exception as exc:
        log.exception("dispatch of run %s failed", run_id)
        await _fail(services, row, State.SYSTEM_ERROR, f"dispatch failed: {type(exc).__name__}: {exc}")
        return
    await record_submission(services, owner, run_id, submitted)
    services.metrics.dispatches.labels(row.backend, "submitted").inc()


async def _holding_lease(services: AppContext, owner: str, work: Awaitable[_T]) -> _T:
    """``work``'s result, the owner's leases renewed meanwhile: a download may outlast a lease,
    and the loop's heartbeat (which renews them otherwise) waits for this dispatch to end."""
    lease = services.settings.lease_seconds

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            async with services.db.write() as conn:
                await run_rows.renew_leases(conn, owner, utcnow() + timedelta(seconds=lease))

    keeper = asyncio.create_task(renew())
    try:
        return await work
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keeper


async def _record_staged(services: AppContext, run_id: str, staged: list[staging.Staged]) -> None:
    """One ``input_staged`` event per file: what was fetched, its size and SHA-256."""
    now = utcnow()
    async with services.db.write() as conn:
        for item in staged:
            await event_rows.add(
                conn, at=now, kind=staging.EVENT_KIND, run_id=run_id, reason=item.describe(), actor=ACTOR
            )


def _start(backend: Backend, spec: RunSpec, folder: RunFolder, files: list[Attachment]) -> Submitted:
    """Write the run's stored attachments into its folder, then hand the run to its engine."""
    folder.write(files)
    return backend.submit(spec)


async def record_submission(services: AppContext, owner: str, run_id: str, submitted: Submitted) -> None:
    """Store the engine's id first (so a cancel can reach it), then move the state."""
    async with services.db.write() as conn:
        # Stamped once the writer is ours: a burst's runs wait for it in turn, and the change
        # happens when it is written (before, a burst's last `at` was older than its commit).
        now = utcnow()
        current = await run_rows.get(conn, run_id)
        if current is None:
            return
        data = {**current.backend_data, **submitted.backend_data}
        await run_rows.update(conn, run_id, {"backend_run_id": submitted.backend_run_id, "backend_data": data})
        if submitted.state is not State.INITIALIZING and current.state is State.INITIALIZING:
            await state_machine.transition(
                conn, run_id, State.INITIALIZING, submitted.state, now=now, reason="accepted by the engine", actor=ACTOR
            )
        # the first check: sooner for a backend with a fast window (a Galaxy tool request)
        backend = services.backends.get(current.backend) if current.backend in services.backends else None
        interval = min(services.settings.sync_min_seconds, next_interval(services, current, now, backend))
        await run_rows.release(conn, run_id, owner, now + timedelta(seconds=interval))


async def _retry_later(services: AppContext, owner: str, row: RunRecord, message: str) -> None:
    services.metrics.backend_errors.labels(row.backend, "dispatch_transient").inc()
    failures = row.check_failures + 1
    delay = min(services.settings.sync_max_seconds, 2.0**failures)
    log.warning("run %s: engine unavailable at dispatch (%s); retry in %.0fs", row.id, message, delay)
    async with services.db.write() as conn:
        await run_rows.release(
            conn,
            row.id,
            owner,
            utcnow() + timedelta(seconds=delay),
            check_failures=failures,
            last_check_error=message,
        )


async def _fail(services: AppContext, row: RunRecord, target: State, message: str) -> None:
    services.metrics.dispatches.labels(row.backend, "failed").inc()
    now = utcnow()
    async with services.db.write() as conn:
        current = await run_rows.get(conn, row.id)
        if current is None:
            return
        state = current.state
        end = failed_dispatch_end(state, target)
        if end is None:
            return
        logs = [*current.system_logs, message]
        await state_machine.transition(
            conn,
            row.id,
            state,
            end,
            now=now,
            reason=message,
            actor=ACTOR,
            fields={"error_message": message, "system_logs": logs},
        )
