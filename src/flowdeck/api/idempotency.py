"""The ``Idempotency-Key`` header on creating POSTs (see :mod:`flowdeck.services.core.idempotency`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from flowdeck.api.deps import base_url
from flowdeck.api.job_views import job_view
from flowdeck.domain.principal import Principal
from flowdeck.services.core import idempotency
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import service as run_service

REPLAYED = "Idempotent-Replayed"


async def idempotent(
    request: Request,
    services: AppContext,
    principal: Principal,
    body_hash: Callable[[], str],
    create: Callable[[], Awaitable[JSONResponse]],
) -> JSONResponse:
    """Answer with ``create()``, or with the first answer given to the same key and body.

    The key is scoped to the caller and to the route (method and path template). Without the
    header this is ``create()`` alone: the body is hashed only when a key needs it.
    """
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return await create()
    endpoint = f"{request.method} {_route_path(request)}"
    use = idempotency.Use(principal.name, endpoint, idempotency.check_key(key), body_hash())
    created: list[JSONResponse] = []

    async def answer() -> idempotency.Answer:
        created.append(await create())
        return idempotency.Answer(created[0].status_code, json.loads(bytes(created[0].body)))

    result = await idempotency.once(services, use, answer)
    if not result.replayed:
        return created[0]
    if result.created_run is not None:
        return await _run_answer(request, services, principal, result.created_run)
    return JSONResponse(result.body, status_code=result.status_code, headers={REPLAYED: "true"})


async def _run_answer(request: Request, services: AppContext, principal: Principal, run_id: str) -> JSONResponse:
    """The answer for a run the key created whose own answer was never stored (its process
    died after the commit): the run as the route would have shown it."""
    headers = {REPLAYED: "true"}
    if not request.url.path.startswith("/jobs"):
        return JSONResponse({"run_id": run_id}, headers=headers)  # WES RunWorkflow
    row = await run_service.get_visible(services, run_id, principal)
    base = await base_url(request)
    headers["Location"] = f"{base}/jobs/{run_id}"
    return JSONResponse(job_view(row, base), status_code=201 if row.backend_run_id else 202, headers=headers)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else request.url.path
