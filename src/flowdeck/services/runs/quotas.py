"""A research group's usage against its share and limits (docs/quotas.md): what
``GET /groups/{name}/usage`` and ``flowdeck usage`` show, and the stored-bytes quota every
submission is checked against."""

from __future__ import annotations

from typing import Any

from flowdeck.db import run_counts
from flowdeck.domain.principal import Principal
from flowdeck.domain.states import ENGINE_HELD, State
from flowdeck.errors import Forbidden, NotFound
from flowdeck.services.core.context import AppContext


async def usage(services: AppContext, group: str, principal: Principal) -> dict[str, Any]:
    """Runs per state of ``group`` and its configured weight and limit. A caller outside the group
    (not an admin) gets NotFound, as for the group's runs: nothing confirms the group exists."""
    if not principal.can_see(group):
        raise NotFound(f"no research group {group!r}")
    async with services.db.read() as conn:
        counts = await run_counts.by_state(conn, frozenset({group}))
        stored = await run_counts.group_bytes(conn, group)
    settings = services.settings
    return {
        "research_group": group,
        "executing": sum(counts.get(s.value, 0) for s in ENGINE_HELD),
        "queued": counts.get(State.QUEUED.value, 0),
        "runs_by_state": counts,
        "weight": settings.group_weights.get(group, 1.0),
        "max_running": settings.group_max_running.get(group),
        "stored_bytes": stored,
        "max_stored_bytes": settings.group_max_stored_bytes.get(group),
    }


async def check_stored_bytes(services: AppContext, group: str | None) -> None:
    """Refuse a submission of a group at or over its stored-bytes quota (403 naming the quota, the
    usage and how to free space); one read of the group's kept byte count, none without a quota."""
    name = group or ""
    quota = services.settings.group_max_stored_bytes.get(name)
    if quota is None:
        return
    async with services.db.read() as conn:
        stored = await run_counts.group_bytes(conn, name)
    if stored >= quota:
        raise Forbidden(
            f"research group {name!r} holds {stored} bytes in storage, at or over its quota of {quota} bytes "
            "(FLOWDECK_GROUP_MAX_STORED_BYTES): no new run is accepted until ended runs it no longer needs are "
            "deleted (DELETE /jobs/{id}, DELETE /ga4gh/wes/v1/runs/{id}) or purged (flowdeck purge)",
            quota="group_max_stored_bytes",
            research_group=name,
            stored_bytes=stored,
            max_stored_bytes=int(quota),
        )
