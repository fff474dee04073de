"""A research group's usage against its share and limits (docs/quotas.md): what
``GET /groups/{name}/usage`` and ``flowdeck groups usage`` show."""

from __future__ import annotations

from typing import Any

from flowdeck.db import run_counts
from flowdeck.domain.principal import Principal
from flowdeck.domain.states import ENGINE_HELD, State
from flowdeck.errors import NotFound
from flowdeck.services.context import Services


async def usage(services: Services, group: str, principal: Principal) -> dict[str, Any]:
    """Runs per state of ``group`` and its configured weight and limit. A caller outside the group
    (not an admin) gets NotFound, as for the group's runs: nothing confirms the group exists."""
    if not principal.can_see(group):
        raise NotFound(f"no research group {group!r}")
    async with services.db.read() as conn:
        counts = await run_counts.by_state(conn, frozenset({group}))
    settings = services.settings
    return {
        "research_group": group,
        "executing": sum(counts.get(s.value, 0) for s in ENGINE_HELD),
        "queued": counts.get(State.QUEUED.value, 0),
        "runs_by_state": counts,
        "weight": settings.group_weights.get(group, 1.0),
        "max_running": settings.group_max_running.get(group),
    }
