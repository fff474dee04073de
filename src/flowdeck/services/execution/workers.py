"""Worker processes: registration, heartbeat (which renews the worker's leases), and the latest beat."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from flowdeck import __version__
from flowdeck.db import runs as run_rows
from flowdeck.db import workers as worker_rows
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext


async def register(services: AppContext, worker_id: str) -> None:
    """Record the worker ``worker_id`` of this host and process as alive."""
    async with services.db.write() as conn:
        await worker_rows.register(conn, worker_id, socket.gethostname(), os.getpid(), __version__, utcnow())


async def unregister(services: AppContext, worker_id: str) -> None:
    async with services.db.write() as conn:
        await worker_rows.unregister(conn, worker_id)


async def heartbeat(services: AppContext, worker_id: str, now: datetime) -> None:
    """The worker is alive: its beat, and the leases of the runs it holds, are renewed together."""
    async with services.db.write() as conn:
        await worker_rows.heartbeat(conn, worker_id, now)
        await run_rows.renew_leases(conn, worker_id, now + timedelta(seconds=services.settings.lease_seconds))


async def latest_heartbeat(services: AppContext) -> datetime | None:
    """When any worker last beat its heart (None: never); raises when the database is away."""
    async with services.db.read() as conn:
        return await worker_rows.latest_heartbeat(conn)
