"""The references registry: the genomes and transcriptomes pipelines' reference parameters name
(docs/references.md). Every signed-in caller may read it; it shows names and index status, never
a server path."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from flowdeck.api.deps import BaseUrlDep, PrincipalDep, ServicesDep
from flowdeck.services.pipelines import references as reference_service

router = APIRouter(prefix="/references", tags=["references"])


@router.get("")
async def list_references(services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """Every registered reference, with whether its indexes are built."""
    registry = await asyncio.to_thread(reference_service.load_registry, services.settings)
    body = [ref.public_dict() | {"links": {"self": f"{base}/references/{ref.name}"}} for ref in registry]
    return JSONResponse({"references": body, "total": len(body)})


@router.get("/{name}")
async def get_reference(name: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """One reference; 404 naming the registered ones."""
    registry = await asyncio.to_thread(reference_service.load_registry, services.settings)
    return JSONResponse(registry.get(name).public_dict())
