"""Operations: health, metrics, the auth instructions page, the front page."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flowdeck.api.deps import BaseUrlDep, PrincipalDep, ServicesDep
from flowdeck.domain.states import State
from flowdeck.services.auth.guard import require_service_admin
from flowdeck.services.auth.instructions import render_html
from flowdeck.services.core.clock import utcnow
from flowdeck.services.execution import workers
from flowdeck.services.runs import run_counts

router = APIRouter(tags=["operations"])


# /healthcheck is seed 003's name for the same check.
@router.get("/healthcheck", include_in_schema=False)
@router.get("/healthz")
async def healthz(services: ServicesDep) -> JSONResponse:
    """200 when the database answers; says whether a worker has beaten its heart lately."""
    try:
        beat = await workers.latest_heartbeat(services)
    except Exception as exc:
        return JSONResponse({"status": "error", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    limit = timedelta(seconds=services.settings.heartbeat_seconds * 3 + 5)
    worker_ok = beat is not None and utcnow() - beat <= limit
    return JSONResponse(
        {
            "status": "ok" if worker_ok else "degraded",
            "database": "ok",
            "worker": "ok" if worker_ok else "no worker heartbeat",
            "last_worker_heartbeat": beat.isoformat() if beat else None,
        }
    )


@router.get("/metrics")
async def metrics(services: ServicesDep, principal: PrincipalDep) -> Response:
    """Prometheus metrics; run counts come from the database. They count every
    group's runs, so with auth on only service admins may read them (docs/auth.md)."""
    require_service_admin(principal, "read the metrics")
    counts = await run_counts.by_state(services, None)
    for state in State:
        services.metrics.runs_by_state.labels(state.value).set(counts.get(state.value, 0))
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/auth/instructions", response_class=HTMLResponse)
async def auth_instructions(services: ServicesDep, base: BaseUrlDep) -> HTMLResponse:
    """How to authenticate against this service, for the configured mode."""
    return HTMLResponse(render_html(services.settings, base))
