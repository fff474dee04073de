"""The worker's dispatch step: claim what may start now and hand each run to its engine.

:func:`flowdeck.services.execution.claims.claim_dispatchable` takes the runs with a lease;
:func:`flowdeck.services.execution.dispatch.dispatch_run` moves each to INITIALIZING and submits it
outside any transaction.
"""

from __future__ import annotations

import asyncio

from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.claims import claim_dispatchable
from flowdeck.services.execution.dispatch import dispatch_run


async def dispatch_once(services: AppContext, owner: str, pool: BlockingPool) -> int:
    """Claim and submit what may start now; returns how many runs were handled."""
    rows = await claim_dispatchable(services, owner)
    await asyncio.gather(*(dispatch_run(services, owner, pool, row) for row in rows))
    return len(rows)
