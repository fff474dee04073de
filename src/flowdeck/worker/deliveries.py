"""The worker's side of the outbox: delivery rounds beside its loop (services/events/deliveries.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.context import AppContext
from flowdeck.services.events.deliveries import deliver_once, prune

PRUNE_EVERY_SECONDS = 3600.0

log = logging.getLogger(__name__)


class Deliverer:
    """Runs :func:`deliver_once` beside the worker loop: one round at a time, never awaited by the
    loop, so a slow receiver never delays a dispatch or a sync."""

    def __init__(self, services: AppContext) -> None:
        self.services = services
        self.pool = BlockingPool(min(16, services.settings.delivery_batch))
        self.http: httpx.Client | None = None  # built at the first kick: it loads the CA bundle (~0.2 s)
        self._round: asyncio.Task[int] | None = None
        self._pruned_at = -PRUNE_EVERY_SECONDS  # the first kick prunes: a restarted worker catches up

    def kick(self) -> None:
        """Start delivering unless it is under way."""
        if self._round is None or self._round.done():
            if self.http is None:
                self.http = httpx.Client(follow_redirects=False, trust_env=False)
            self._round = asyncio.get_running_loop().create_task(self._drain())
            self._round.add_done_callback(_log_failure)

    async def _drain(self) -> int:
        """Rounds until none finds a due delivery: a run's next event is due as soon as the one
        before it was delivered, without waiting for the worker's next iteration. Old finished
        deliveries are pruned in the same task, at most hourly, so the outbox stays bounded."""
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            if gone := await prune(self.services):
                log.info("pruned %d finished deliveries", gone)
        sent = 0
        while done := await deliver_once(self.services, self.pool, self.http):
            sent += done
        return sent

    async def close(self) -> None:
        if self._round is not None and not self._round.done():
            self._round.cancel()
            with contextlib.suppress(BaseException):
                await self._round
        self.pool.close()
        if self.http is not None:
            self.http.close()


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("delivery round failed; the next one retries: %s", task.exception())
