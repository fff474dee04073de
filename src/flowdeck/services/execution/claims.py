"""What a worker takes on: queued runs to dispatch (within the local admission limit and each
group's fair share) and new
requests to expand, each claimed with a lease so that two workers never take the same one."""

from __future__ import annotations

import functools
from datetime import timedelta

from flowdeck.db import requests as request_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.requests import RequestRecord
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution import fair_share


async def claim_dispatchable(services: AppContext, owner: str) -> list[RunRecord]:
    """Runs to dispatch now: interrupted dispatches, queued runs of remote engines, and queued runs
    of local engines up to ``max_local_runs`` executing at once, shared fairly among research
    groups (services.fair_share)."""
    settings = services.settings
    local = [b.name for b in services.backends.all() if b.runs_locally]
    enabled = services.backends.names()
    lease = timedelta(seconds=settings.lease_seconds)
    async with services.db.write() as conn:
        claim = functools.partial(
            run_rows.claim, conn, owner=owner, now=utcnow(), lease=lease, postgres=services.db.is_postgres
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
        claimed += await fair_share.claim_queued(services, conn, claim, local=local, remote=remote)
    return claimed


async def claim_requests(services: AppContext, owner: str, limit: int) -> list[RequestRecord]:
    """Up to ``limit`` requests still to expand."""
    async with services.db.write() as conn:
        return list(
            await request_rows.claim(
                conn,
                owner=owner,
                now=utcnow(),
                lease=timedelta(seconds=services.settings.lease_seconds),
                limit=limit,
                postgres=services.db.is_postgres,
            )
        )


async def release_request(services: AppContext, request_id: str, owner: str) -> None:
    """Give a request back (not fully expanded yet): the next iteration, or worker, continues it."""
    async with services.db.write() as conn:
        await request_rows.release(conn, request_id, owner)
