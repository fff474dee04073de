"""Sync: keeping runs in step with their engines (engine report → run state), and carrying out cancels.

One pass claims the runs that are due, asks each backend about its runs in
batches (bounded parallelism), and writes only what changed: the runs an engine
reports unchanged only give back their lease, all in one statement. Transient
engine errors never change a run's state: the run is retried later with backoff.
Polling is adaptive: a young run is checked often, an old one less. Which state a
report leads to, and when a run is looked at again, is decided in
:mod:`flowdeck.domain.run_policy`; the watchdog and broken-run ending are in
:mod:`flowdeck.services.execution.watchdog`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.backends.base import Backend
from flowdeck.backends.local.launcher import subscribe_exits
from flowdeck.db import runs as run_rows
from flowdeck.db import tasks as task_rows
from flowdeck.domain import run_policy
from flowdeck.domain.runs import RunHandle, RunRecord, SyncReport
from flowdeck.domain.states import ENGINE_HELD, State, is_terminal
from flowdeck.errors import EngineUnavailable
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.handles import handle_of
from flowdeck.services.execution.watchdog import end_broken, watchdog
from flowdeck.services.runs import results as stored
from flowdeck.services.runs import state_machine

log = logging.getLogger(__name__)
ACTOR = "worker"
CHECKED = sorted(ENGINE_HELD)


async def check_once(services: AppContext, owner: str, pool: BlockingPool, *, ids: list[str] | None = None) -> int:
    """One pass over the runs that are due (or exactly ``ids``); returns how many were checked."""
    claim = partial(
        run_rows.claim,
        owner=owner,
        now=utcnow(),
        lease=timedelta(seconds=services.settings.lease_seconds),
        limit=services.settings.sync_batch,
        postgres=services.db.is_postgres,
        ids=ids,
    )
    async with services.db.write() as conn:
        rows = await claim(
            conn, states=CHECKED, due_only=ids is None, backends=services.backends.names(), submitted=True
        )
        # A cancel of a run the engine never got needs no engine at all.
        unsent = await claim(conn, states=[State.CANCELING], due_only=False, submitted=False)
    for row in unsent:
        await _finish_unsent_cancel(services, owner, row)
    by_backend: dict[str, list[RunRecord]] = defaultdict(list)
    for row in rows:
        by_backend[row.backend].append(row)
    await asyncio.gather(*(_check_backend(services, owner, pool, name, group) for name, group in by_backend.items()))
    services.metrics.sync_passes.inc()
    return len(rows) + len(unsent)


async def sync_all(services: AppContext, owner: str, pool: BlockingPool) -> int:
    """Check every non-terminal run the engines hold, once (``flowdeck sync --once``).

    Runs are taken a page (``sync_batch``) at a time, and the next page is already with the
    engines while the previous one's reports are written: neither the engines nor the
    database waits for the other. Backends keep their own bound on parallel engine calls."""
    total, after = 0, None
    in_flight: list[asyncio.Task[int]] = []
    try:
        while True:
            async with services.db.read() as conn:
                ids = await run_rows.active_ids(conn, CHECKED, after, services.settings.sync_batch)
            if not ids:
                break
            in_flight.append(asyncio.create_task(check_once(services, owner, pool, ids=ids)))
            after = ids[-1]
            if len(in_flight) == 2:
                total += await in_flight.pop(0)
        while in_flight:
            total += await in_flight.pop(0)
    finally:
        for task in in_flight:  # only after a failure: the pass ends, and so does its other page
            task.cancel()
    return total


async def _finish_unsent_cancel(services: AppContext, owner: str, row: RunRecord) -> None:
    async with services.db.write() as conn:
        moved = await state_machine.transition(
            conn,
            row.id,
            State.CANCELING,
            State.CANCELED,
            now=utcnow(),
            reason="canceled before it reached an engine",
            actor=ACTOR,
        )
        if not moved:
            await run_rows.release(conn, row.id, owner, utcnow())


async def _check_backend(
    services: AppContext, owner: str, pool: BlockingPool, name: str, rows: list[RunRecord]
) -> None:
    backend = services.backends.get(name)
    for row in rows:
        if run_policy.needs_engine_cancel(row.state, row.cancel_sent_at is not None):
            await _send_cancel(services, pool, backend, row)
    handles = [handle_of(row, services.runs_dir) for row in rows]
    if backend.parallel_sync:
        # Split, it would repeat its batched calls per part and multiply its own bound.
        chunks = [handles]
    else:
        size = max(1, -(-len(handles) // services.settings.sync_concurrency))
        chunks = [handles[i : i + size] for i in range(0, len(handles), size)]
    results = await asyncio.gather(*(_sync_chunk(services, pool, backend, chunk) for chunk in chunks))
    rows_by_id = {row.id: row for row in rows}
    quiet: list[RunRecord] = []
    for reports in results:
        for report in reports:
            row = rows_by_id[report.run_id]
            if _nothing_to_write(row, report) and not stored.live_due(services.settings, row, utcnow()):
                quiet.append(row)
                continue
            try:
                await apply_report(services, owner, row, report, backend=backend, pool=pool)
            except Exception:
                # One broken run must never stop the pass.
                log.exception("could not apply the report of run %s", report.run_id)
    await _release_quiet(services, owner, quiet, backend, pool)
    services.metrics.runs_synced.labels(name).inc(len(handles))


def _nothing_to_write(row: RunRecord, report: SyncReport) -> bool:
    """True when the report changes nothing about the run: only its lease is given back."""
    return (
        report.transient_error is None
        and report.tasks is None
        and not report.progressed
        and not row.check_failures
        and run_policy.sync_target(row.state, report.state) is None
        and not _changed_fields(row, report)
    )


async def _release_quiet(
    services: AppContext, owner: str, rows: list[RunRecord], backend: Backend, pool: BlockingPool
) -> None:
    """Give back the leases of runs whose engine reported nothing new, in one transaction:
    a transaction per run would make a pass over many quiet runs wait on the database."""
    if not rows:
        return
    now = utcnow()
    due = [(row.id, now + timedelta(seconds=next_interval(services, row, now, backend))) for row in rows]
    async with services.db.write() as conn:
        await run_rows.release_many(conn, owner, due)
    for row in rows:
        await watchdog(services, row, now, backend, pool)


async def _sync_chunk(
    services: AppContext, pool: BlockingPool, backend: Backend, chunk: list[RunHandle]
) -> list[SyncReport]:
    """Reports for every handle. If the batch call fails, each run is asked alone,
    so that one run the backend chokes on cannot hold the others back."""
    try:
        reports = await pool.run(backend.sync, chunk)
    except Exception as exc:
        if len(chunk) > 1 and not isinstance(exc, EngineUnavailable):
            alone = await asyncio.gather(*(_sync_chunk(services, pool, backend, [h]) for h in chunk))
            return [report for reports in alone for report in reports]
        transient = isinstance(exc, EngineUnavailable)
        services.metrics.backend_errors.labels(backend.name, "sync_transient" if transient else "sync_error").inc()
        log.warning("%s sync failed for %d runs: %s", backend.name, len(chunk), exc)
        message = f"{type(exc).__name__}: {exc}"
        return [SyncReport(run_id=h.run_id, transient_error=message, backend_failed=not transient) for h in chunk]
    wanted = {h.run_id for h in chunk}
    seen = {r.run_id for r in reports}
    missing = [
        SyncReport(run_id=h.run_id, transient_error="the engine gave no report") for h in chunk if h.run_id not in seen
    ]
    return [r for r in reports if r.run_id in wanted] + missing


async def _send_cancel(services: AppContext, pool: BlockingPool, backend: Backend, row: RunRecord) -> None:
    handle = handle_of(row, services.runs_dir)
    try:
        result = await pool.run(backend.cancel, handle)
    except Exception as exc:
        services.metrics.backend_errors.labels(backend.name, "cancel").inc()
        log.warning("cancel of run %s failed: %s; will retry", row.id, exc)
        return
    now = utcnow()
    try:
        # The logs a canceled run left go to storage with its end, as any ended run's do.
        ended = stored.recorded(await stored.at_end(services, pool, row, None)) if result.confirmed else None
    except Exception as exc:  # storage unreachable: the cancel (idempotent) and the put are retried
        log.warning("results of canceled run %s not stored: %s; will retry", row.id, exc)
        return
    async with services.db.write() as conn:
        await run_rows.update(conn, row.id, {"cancel_sent_at": now})
        if result.confirmed:
            await state_machine.transition(
                conn,
                row.id,
                State.CANCELING,
                State.CANCELED,
                now=now,
                reason=result.message or "canceled by the engine",
                actor=ACTOR,
                fields=ended,
            )


async def seconds_until_due(services: AppContext) -> float | None:
    """Seconds until the soonest run this worker may check is due (None: no run is waiting), so an
    idle worker wakes for a run on a short interval (a Galaxy run in its fast window)."""
    async with services.db.read() as conn:
        due = await run_rows.next_due_at(conn, CHECKED, services.backends.names())
    return None if due is None else (due - utcnow()).total_seconds()


def next_interval(services: AppContext, row: RunRecord, now: datetime, backend: Backend | None = None) -> float:
    """Seconds until the run is polled again (:func:`~flowdeck.domain.run_policy.poll_interval`),
    or sooner while the run is in its backend's fast window (:meth:`Backend.fast_sync`)."""
    started: datetime = row.start_time or row.created_at
    settings = services.settings
    age = (now - started).total_seconds()
    interval = run_policy.poll_interval(age, settings.sync_min_seconds, settings.sync_max_seconds)
    fast = backend.fast_sync() if backend is not None else None
    if fast is not None and age < fast[0]:
        return min(interval, fast[1])
    return interval


async def apply_report(
    services: AppContext, owner: str, row: RunRecord, report: SyncReport, *, backend: Backend, pool: BlockingPool
) -> None:
    """Write what a report says, only what changed, and release the lease."""
    now = utcnow()
    if report.transient_error is not None:
        await _apply_failed_check(services, owner, row, report, now, backend, pool)
        return
    current = row.state
    target = run_policy.sync_target(current, report.state)
    fields = _changed_fields(row, report)
    if target is not None and is_terminal(target):
        # Before the state change, so an ended run always has its results in storage.
        try:
            fields.update(stored.recorded(await stored.at_end(services, pool, replace(row, **fields), report.tasks)))
        except Exception as exc:  # storage unreachable: the run keeps its state, checked again with backoff
            failed = replace(report, transient_error=f"results not stored: {type(exc).__name__}: {exc}")
            await _apply_failed_check(services, owner, row, failed, now, backend, pool)
            return
    elif target is None and stored.live_due(services.settings, row, now):
        try:
            fields.update(stored.recorded(await stored.live(services, pool, replace(row, **fields), report.tasks, now)))
        except Exception as exc:  # live logs are a convenience: the report is written all the same
            log.warning("logs of run %s not copied to storage: %s", row.id, exc)
    async with services.db.write() as conn:
        now = utcnow()  # the change happens when written, not when the report came (record_submission)
        progressed = False
        if report.tasks is not None:
            progressed = await task_rows.sync(conn, row.id, report.tasks, now) > 0
        if target is not None and await _move(services, conn, owner, row, report, target, fields, now, backend):
            return
        if progressed or report.progressed:
            fields["last_progress_at"] = now
        if row.check_failures:
            fields.update(check_failures=0, last_check_error=None)
        await run_rows.release(
            conn, row.id, owner, now + timedelta(seconds=next_interval(services, row, now, backend)), **fields
        )
    await watchdog(services, row, now, backend, pool)


async def _move(
    services: AppContext,
    conn: AsyncConnection,
    owner: str,
    row: RunRecord,
    report: SyncReport,
    target: State,
    fields: dict[str, Any],
    now: datetime,
    backend: Backend,
) -> bool:
    """Move the run to ``target`` as its engine reports; False if another process moved it first."""
    current = row.state
    reason = report.reason or f"engine reports {target.value}"
    if not await state_machine.transition(
        conn, row.id, current, target, now=now, reason=reason, actor=ACTOR, fields=fields
    ):
        return False
    started = row.last_progress_at or row.updated_at
    services.metrics.transition_seconds.labels(current.value, target.value).observe((now - started).total_seconds())
    if not is_terminal(target):
        interval = min(services.settings.sync_min_seconds, next_interval(services, row, now, backend))
        await run_rows.release(conn, row.id, owner, now + timedelta(seconds=interval))
    return True


async def _apply_failed_check(
    services: AppContext,
    owner: str,
    row: RunRecord,
    report: SyncReport,
    now: datetime,
    backend: Backend,
    pool: BlockingPool,
) -> None:
    """A check that failed never changes the run's state (unless the run is broken): it backs off."""
    assert report.transient_error is not None
    services.metrics.backend_errors.labels(backend.name, "run_check").inc()
    failures = row.check_failures + 1
    settings = services.settings
    if run_policy.is_broken(report.backend_failed, failures, settings.max_failed_checks):
        await end_broken(services, row, now, report.transient_error, failures, backend, pool)
        return
    delay = run_policy.check_backoff(failures, settings.sync_min_seconds, settings.sync_max_seconds, report.retry_after)
    async with services.db.write() as conn:
        await run_rows.release(
            conn,
            row.id,
            owner,
            now + timedelta(seconds=delay),
            check_failures=failures,
            last_check_error=report.transient_error,
        )
    await watchdog(services, row, now, backend, pool)


def _changed_fields(row: RunRecord, report: SyncReport) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    if report.outputs is not None:
        wanted["outputs"] = report.outputs
    if report.output_files is not None:
        wanted["output_files"] = [asdict(f) for f in report.output_files]
    for name in ("exit_code", "stdout_path", "stderr_path", "cmd"):
        value = getattr(report, name)
        if value is not None:
            wanted[name] = value
    if report.backend_data is not None:
        wanted["backend_data"] = {**row.backend_data, **report.backend_data}
    if report.system_logs:
        merged = list(row.system_logs)
        merged += [line for line in report.system_logs if line not in merged]
        wanted["system_logs"] = merged
    if report.state in (State.EXECUTOR_ERROR, State.SYSTEM_ERROR) and report.reason:
        wanted["error_message"] = report.reason
    return {key: value for key, value in wanted.items() if getattr(row, key) != value}


def subscribe_engine_exits(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener(run_id)`` (from another thread) when a local engine this process started ends,
    so the worker syncs that run at once instead of at its next poll; returns the unsubscribe."""
    return subscribe_exits(listener)
