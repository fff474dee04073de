"""Expanding new requests into runs, a bounded step per iteration.

A request is claimed with a lease (as runs are), expanded by up to
``EXPAND_RUNS`` runs, then released or settled; a worker that dies mid-way
leaves its lease to expire and the next worker completes the expansion.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flowdeck.db import requests as request_rows
from flowdeck.services.clock import utcnow
from flowdeck.services.context import Services
from flowdeck.services.request_expansion import expand

log = logging.getLogger(__name__)
CLAIM_LIMIT = 4
EXPAND_RUNS = 200


async def expand_once(services: Services, owner: str, max_runs: int = EXPAND_RUNS) -> int:
    """Claim new requests and create up to ``max_runs`` runs of each; returns runs created."""
    now = utcnow()
    async with services.db.write() as conn:
        claimed = await request_rows.claim(
            conn,
            owner=owner,
            now=now,
            lease=timedelta(seconds=services.settings.lease_seconds),
            limit=CLAIM_LIMIT,
            postgres=services.db.is_postgres,
        )
    created = 0
    for row in claimed:
        try:
            progress = await expand(services, row, owner, max_runs)
        except Exception:
            log.exception("expansion of request %s failed; it will be retried", row["id"])
            progress = None
        created += progress.created if progress else 0
        if progress is None or not progress.settled:
            async with services.db.write() as conn:
                await request_rows.release(conn, row["id"], owner)
    return created + len(claimed)
