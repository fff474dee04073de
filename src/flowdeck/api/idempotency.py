"""The ``Idempotency-Key`` header on creating POSTs (see :mod:`flowdeck.services.idempotency`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from flowdeck.domain.principal import Principal
from flowdeck.services import idempotency
from flowdeck.services.context import Services

REPLAYED = "Idempotent-Replayed"


async def idempotent(
    request: Request,
    services: Services,
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
    return JSONResponse(result.body, status_code=result.status_code, headers={REPLAYED: "true"})


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else request.url.path
