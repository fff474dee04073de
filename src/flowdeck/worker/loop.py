"""The worker daemon: each iteration is a plain function call tests can make."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from flowdeck import __version__
from flowdeck.db import runs as run_rows
from flowdeck.db import workers as worker_rows
from flowdeck.services.blocking import BlockingPool
from flowdeck.services.clock import utcnow
from flowdeck.services.context import Services
from flowdeck.worker.check import check_once, sync_all
from flowdeck.worker.dispatch import dispatch_once
from flowdeck.worker.expand import expand_once

log = logging.getLogger(__name__)


class Worker:
    """Claims queued runs, dispatches them, syncs active ones, carries out cancels."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pool = BlockingPool(max(4, services.settings.sync_concurrency))
        self._last_beat = utcnow() - timedelta(days=1)

    async def start(self) -> None:
        async with self.services.db.write() as conn:
            await worker_rows.register(conn, self.id, socket.gethostname(), os.getpid(), __version__, utcnow())
        log.info("worker %s started", self.id)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            async with self.services.db.write() as conn:
                await worker_rows.unregister(conn, self.id)
        self.pool.close()
        log.info("worker %s stopped", self.id)

    async def iterate(self) -> int:
        """One round: heartbeat, dispatch, check. Returns how much work was done."""
        await self._heartbeat()
        done = await expand_once(self.services, self.id)
        done += await dispatch_once(self.services, self.id, self.pool)
        done += await check_once(self.services, self.id, self.pool)
        return done

    async def sync_pass(self) -> int:
        """Check every active run once."""
        return await sync_all(self.services, self.id, self.pool)

    async def run(self, stop: asyncio.Event) -> None:
        """Iterate until ``stop`` is set; an error in one round never ends the loop."""
        await self.start()
        try:
            while not stop.is_set():
                try:
                    done = await self.iterate()
                except Exception:
                    log.exception("worker iteration failed; continuing")
                    done = 0
                if not done:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.services.settings.worker_poll_seconds)
        finally:
            await self.stop()

    async def _heartbeat(self) -> None:
        now = utcnow()
        if (now - self._last_beat).total_seconds() < self.services.settings.heartbeat_seconds:
            return
        async with self.services.db.write() as conn:
            await worker_rows.heartbeat(conn, self.id, now)
            await run_rows.renew_leases(conn, self.id, now + timedelta(seconds=self.services.settings.lease_seconds))
        self._last_beat = now
