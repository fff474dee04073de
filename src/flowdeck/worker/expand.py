"""Expanding new requests into runs, a bounded step per iteration.

A request is claimed with a lease (as runs are), expanded by up to
``EXPAND_RUNS`` runs, then released or settled; a worker that dies mid-way
leaves its lease to expire and the next worker completes the expansion.
"""

from __future__ import annotations

import logging

from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.claims import claim_requests, release_request
from flowdeck.services.requests.expansion import expand

log = logging.getLogger(__name__)
CLAIM_LIMIT = 4
EXPAND_RUNS = 200


async def expand_once(services: AppContext, owner: str, max_runs: int = EXPAND_RUNS) -> int:
    """Claim new requests and create up to ``max_runs`` runs of each.

    Returns the work done, as every step of ``WorkerLoop.iterate`` does: runs created plus requests
    claimed, so a round that only settled a request (no run created) still counts and the loop
    does not sleep before the next one."""
    claimed = await claim_requests(services, owner, CLAIM_LIMIT)
    created = 0
    for row in claimed:
        try:
            progress = await expand(services, row, owner, max_runs)
        except Exception:
            log.exception("expansion of request %s failed; it will be retried", row.id)
            progress = None
        created += progress.created if progress else 0
        if progress is None or not progress.settled:
            await release_request(services, row.id, owner)
    return created + len(claimed)
