"""Dispatch-now: the API hands a run it just stored to its engine, waiting a bounded time.

The engine calls run in ``AppContext.inline_engine_calls`` (a
:class:`~flowdeck.services.core.blocking.TrackedPool`): its threads are made on first use and drained when
the services close, so nothing is built at import time. A dispatch that outlives its wait
keeps running in the background; if the process dies first, the run's lease expires and a worker
takes it over (backends' submit is idempotent per run id).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from flowdeck.db import runs as run_rows
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.dispatch import dispatch_run


async def dispatch_now(services: AppContext, run_id: str) -> None:
    """Claim the new run ``run_id`` and submit it, waiting at most dispatch_timeout_seconds.

    Returns without waiting if a worker claimed the run first."""
    owner = f"api-{uuid.uuid4().hex[:12]}"
    row = await _claim(services, owner, run_id)
    if row is None:
        return
    task = services.inline_engine_calls.start(lambda pool: dispatch_run(services, owner, pool, row))
    try:
        await asyncio.wait_for(asyncio.shield(task), services.settings.dispatch_timeout_seconds)
    except TimeoutError:
        return


async def _claim(services: AppContext, owner: str, run_id: str) -> RunRecord | None:
    async with services.db.write() as conn:
        rows = await run_rows.claim(
            conn,
            states=[State.QUEUED],
            owner=owner,
            now=utcnow(),
            lease=timedelta(seconds=services.settings.lease_seconds),
            limit=1,
            postgres=services.db.is_postgres,
            due_only=False,
            ids=[run_id],
        )
    return rows[0] if rows else None
