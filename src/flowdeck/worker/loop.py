"""The worker daemon: each iteration is a plain function call tests can make.

Between iterations an idle worker sleeps ``worker_poll_seconds`` (less when a run is due
sooner: a Galaxy run in its fast window, docs/galaxy-tools.md), but three things
wake it at once, so a run waits on no poll interval: a run inserted by this
process (``flowdeck up``: the API shares the services); on PostgreSQL, any commit
that wrote events in any process (a new run, a cancel: the NOTIFY of migration 0005,
LISTENed to on a connection of the worker's own); and the end of a
local engine this process launched (that run is then checked out of turn, and
the next iteration, which follows at once, gives its slot to the next queued run).
Polling stays the fallback: on SQLite and MariaDB, and while the LISTEN connection is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from flowdeck.errors import DatabaseUnavailable
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.events.stream import listen_for_commits
from flowdeck.services.execution import workers
from flowdeck.services.execution.sync import check_once, seconds_until_due, subscribe_engine_exits, sync_all
from flowdeck.services.requests.steps import create_due
from flowdeck.services.runs import purge, run_counts
from flowdeck.worker.deliveries import Deliverer
from flowdeck.worker.dispatch import dispatch_once
from flowdeck.worker.expand import expand_once

log = logging.getLogger(__name__)


OUTAGE_MAX_WAIT = 30.0
# How often a worker folds the run-count deltas (db.run_counts): a read sums the rows appended
# since, two or three per run that changed state in the meantime.
COMPACT_COUNTS_SECONDS = 30.0
# The shortest idle sleep when a run is due or overdue: an idle loop never spins.
MIN_IDLE_SECONDS = 0.05


class Backoff:
    """Waits during a database outage: 0.5 s, doubling up to ``OUTAGE_MAX_WAIT``; one log line
    when it starts, one per wait after, one when it ends. Runs are left as they are: the
    database is their record, and nothing can be recorded about them until it is back."""

    def __init__(self) -> None:
        self.wait = 0.0

    def next(self, exc: DatabaseUnavailable) -> float:
        self.wait = min(OUTAGE_MAX_WAIT, self.wait * 2 if self.wait else 0.5)
        log.warning("worker waits %.1f s: %s", self.wait, exc.detail)
        return self.wait

    def ended(self) -> None:
        if self.wait:
            log.warning("worker: the database answers again")
        self.wait = 0.0


class Worker:
    """Claims queued runs, dispatches them, syncs active ones, carries out cancels."""

    def __init__(self, services: AppContext) -> None:
        self.services = services
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pool = BlockingPool(max(4, services.settings.sync_concurrency))
        self._last_beat = utcnow() - timedelta(days=1)
        self._last_compaction = -COMPACT_COUNTS_SECONDS
        self._last_purge = -services.settings.purge_interval_seconds
        self._wake = asyncio.Event()
        self._ended: set[str] = set()
        self._unsubscribe: list[Any] = []
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self.deliverer = Deliverer(services)

    async def start(self) -> None:
        await workers.register(self.services, self.id)
        self._listen()
        log.info("worker %s started", self.id)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.deliverer.close()
        with contextlib.suppress(Exception):
            await workers.unregister(self.services, self.id)
        self.pool.close()
        log.info("worker %s stopped", self.id)

    def _listen(self) -> None:
        loop = asyncio.get_running_loop()

        def engine_ended(run_id: str) -> None:  # called from a launcher's waiter thread
            loop.call_soon_threadsafe(self.run_ended, run_id)

        self._unsubscribe.append(subscribe_engine_exits(engine_ended))

        def run_queued() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._unsubscribe.append(self.services.on_run_queued(run_queued))
        if self.services.db.is_postgres and self._listener is None:
            # Other processes' new runs and cancels: a NOTIFY wakes the idle loop at once.
            self._listener = asyncio.create_task(
                listen_for_commits(self.services, self._notified, self._lost, what="worker")
            )

    def _notified(self) -> None:
        # The first call of each connection only says LISTEN is in place: nothing to do yet.
        if self._listening:
            self._wake.set()
        self._listening = True

    def _lost(self) -> None:
        self._listening = False

    def run_ended(self, run_id: str) -> None:
        """A local engine of ``run_id`` ended: check that run in the next iteration, which starts now."""
        self._ended.add(run_id)
        self._wake.set()

    async def iterate(self) -> int:
        """One round: heartbeat, dispatch, check. Returns how much work was done."""
        await self._heartbeat()
        await self._compact_counts()
        await self._purge()
        self.deliverer.kick()  # webhooks and e-mail, beside the loop (worker.deliveries)
        done = await expand_once(self.services, self.id)
        done += await dispatch_once(self.services, self.id, self.pool)
        if self._ended:
            # After dispatch, so a run whose engine ended before its submission was recorded is claimable.
            ended, self._ended = sorted(self._ended), set()
            done += await check_once(self.services, self.id, self.pool, ids=ended)
        done += await check_once(self.services, self.id, self.pool)
        done += await create_due(self.services)  # request-level steps (docs/adr/0019)
        return done

    async def sync_pass(self) -> int:
        """Check every active run once."""
        return await sync_all(self.services, self.id, self.pool)

    async def run(self, stop: asyncio.Event) -> None:
        """Iterate until ``stop`` is set; an error in one round never ends the loop, and while the
        database is unavailable the worker waits longer and longer (up to ``OUTAGE_MAX_WAIT``)."""
        if not await self._start_when_reachable(stop):
            return
        outage = Backoff()
        try:
            while not stop.is_set():
                try:
                    done = await self.iterate()
                    outage.ended()
                except DatabaseUnavailable as exc:
                    await self._sleep(stop, outage.next(exc))
                    continue
                except Exception:
                    log.exception("worker iteration failed; continuing")
                    done = 0
                if not done:
                    await self._idle(stop)
        finally:
            await self.stop()

    async def _start_when_reachable(self, stop: asyncio.Event) -> bool:
        """Register this worker, waiting for the database; False when stopped first."""
        outage = Backoff()
        while not stop.is_set():
            try:
                await self.start()
                outage.ended()
                return True
            except DatabaseUnavailable as exc:
                await self._sleep(stop, outage.next(exc))
        return False

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleep ``worker_poll_seconds`` or until the next run is due, or less when stopped or woken."""
        if self._wake.is_set():
            self._wake.clear()
            return
        timeout = self.services.settings.worker_poll_seconds
        due = await seconds_until_due(self.services)
        if due is not None:
            timeout = min(timeout, max(MIN_IDLE_SECONDS, due))
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        self._wake.clear()

    async def _compact_counts(self) -> None:
        now = time.monotonic()
        if now - self._last_compaction < COMPACT_COUNTS_SECONDS:
            return
        await run_counts.compact(self.services)
        self._last_compaction = now

    async def _purge(self) -> None:
        """Every ``purge_interval_seconds``: runs past retention, then this host's folders of deleted runs."""
        now = time.monotonic()
        if now - self._last_purge < self.services.settings.purge_interval_seconds:
            return
        self._last_purge = now
        gone = await purge.purge_by_settings(self.services)
        folders = await purge.purge_folders(self.services)
        if gone or folders:
            log.info("purged %d runs past retention and %d folders of deleted runs", len(gone), folders)

    async def _heartbeat(self) -> None:
        now = utcnow()
        if (now - self._last_beat).total_seconds() < self.services.settings.heartbeat_seconds:
            return
        await workers.heartbeat(self.services, self.id, now)
        self._last_beat = now
