"""Claiming queued runs fairly across research groups (ADR 0024, docs/quotas.md).

Within one transaction holding the dispatch lock, a worker counts the executing runs per group,
splits its free slots among the groups with queued runs (:func:`flowdeck.domain.fair_share.plan`),
claims each group's share, and moves the claimed runs to INITIALIZING at once, so the next worker,
waiting on the lock, counts them as holding their slots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import dispatch_slots
from flowdeck.db import runs as run_rows
from flowdeck.domain.fair_share import plan
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import state_machine

Claim = Callable[..., Awaitable[Sequence[RunRecord]]]
ACTOR = "worker"


async def claim_queued(
    services: AppContext, conn: AsyncConnection, claim: Claim, *, local: Sequence[str], remote: Sequence[str]
) -> list[RunRecord]:
    """Claim queued runs of ``remote`` engines (up to a batch) and of ``local`` ones (up to the free
    local slots), each group its fair share and never past its limit; returns them INITIALIZING."""
    settings = services.settings
    await dispatch_slots.lock(conn)
    groups = await dispatch_slots.groups(conn)
    if not groups.waiting:
        return []
    room = room_left(settings.group_max_running, groups.executing)
    claimed: list[RunRecord] = []
    if remote:
        # Remote engines have no slots: a batch, shared by each group's executing runs on all engines.
        in_pool = dict(groups.executing)
        claimed += await _fill(services, claim, remote, in_pool, room, groups.waiting, settings.dispatch_batch)
    if local:
        in_pool = await dispatch_slots.executing_on(conn, local)
        free = min(settings.max_local_runs - sum(in_pool.values()), settings.dispatch_batch)
        claimed += await _fill(services, claim, local, in_pool, room, groups.waiting, free)
    return await _start(conn, claimed)


def room_left(limits: Mapping[str, int], executing: Mapping[str, int]) -> dict[str, int]:
    """How many more runs each group with a limit may have executing, on any engine."""
    return {group: max(0, limit - executing.get(group, 0)) for group, limit in limits.items()}


async def _fill(
    services: AppContext,
    claim: Claim,
    backends: Sequence[str],
    executing: dict[str, int],
    room: dict[str, int],
    waiting: Sequence[str],
    free: int,
) -> list[RunRecord]:
    """Claim ``free`` runs by plan; a group with fewer due runs than its share leaves the plan and
    its slots go round again."""
    weights = services.settings.group_weights
    candidates, claimed = list(waiting), list[RunRecord]()
    while free > 0 and (shares := plan(candidates, free, executing, weights, room)):
        for group, share in shares.items():
            rows = await claim(states=[State.QUEUED], limit=share, backends=backends, group=group)
            claimed += rows
            free -= len(rows)
            executing[group] = executing.get(group, 0) + len(rows)
            if group in room:
                room[group] -= len(rows)
            if len(rows) < share:
                candidates.remove(group)
    return claimed


async def _start(conn: AsyncConnection, claimed: list[RunRecord]) -> list[RunRecord]:
    """Move the claimed runs to INITIALIZING in the claim's transaction: from now on they hold a slot."""
    started: list[Any] = []
    for row in claimed:
        moved = await state_machine.transition(
            conn, row.id, State.QUEUED, State.INITIALIZING, now=utcnow(), reason="claimed by a worker", actor=ACTOR
        )
        if moved:
            started.append(row.id)
    return list(await run_rows.get_many(conn, started)) if started else []
