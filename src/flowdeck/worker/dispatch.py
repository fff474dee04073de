"""Claiming queued runs for dispatch, within the local admission limit.

A run is claimed with a lease; :func:`flowdeck.services.dispatch.dispatch_run`
moves it to INITIALIZING and submits it outside any transaction.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta

from sqlalchemy.engine import RowMapping

from flowdeck.db import runs as run_rows
from flowdeck.domain.states import State
from flowdeck.services.blocking import BlockingPool
from flowdeck.services.clock import utcnow
from flowdeck.services.context import Services
from flowdeck.services.dispatch import dispatch_run


async def dispatch_once(services: Services, owner: str, pool: BlockingPool) -> int:
    """Claim and submit what may start now; returns how many runs were handled."""
    rows = await _claim(services, owner)
    await asyncio.gather(*(dispatch_run(services, owner, pool, row) for row in rows))
    return len(rows)


async def _claim(services: Services, owner: str) -> list[RowMapping]:
    settings = services.settings
    now = utcnow()
    local = [b.name for b in services.backends.all() if b.runs_locally]
    enabled = services.backends.names()
    lease = timedelta(seconds=settings.lease_seconds)
    async with services.db.write() as conn:
        claim = functools.partial(
            run_rows.claim, conn, owner=owner, now=now, lease=lease, postgres=services.db.is_postgres
        )
        # A run whose dispatch was interrupted (lease expired in INITIALIZING, no engine id) comes back here.
        claimed = list(
            await claim(
                states=[State.INITIALIZING],
                limit=settings.dispatch_batch,
                due_only=False,
                backends=enabled,
                submitted=False,
            )
        )
        remote = [name for name in enabled if name not in local]
        claimed += await claim(states=[State.QUEUED], limit=settings.dispatch_batch, backends=remote)
        if local:
            free = settings.max_local_runs - await run_rows.count_executing(conn, local)
            if free > 0:
                limit = min(free, settings.dispatch_batch)
                claimed += await claim(states=[State.QUEUED], limit=limit, backends=local)
    return claimed
