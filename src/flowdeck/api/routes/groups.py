"""Research groups: their usage against their share and limits (docs/quotas.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from flowdeck.api.deps import PrincipalDep, ServicesDep
from flowdeck.services.runs import quotas

router = APIRouter(prefix="/groups", tags=["groups"])


@router.get("/{name}/usage")
async def group_usage(name: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Executing and queued runs, runs per state, weight and limit of one research group; for
    the group's members and admins (anyone else: 404)."""
    return JSONResponse(await quotas.usage(services, name, principal))
