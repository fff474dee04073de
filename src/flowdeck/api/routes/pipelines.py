"""The pipeline catalog: list, versions, parameter schemas. Group-limited pipelines
are invisible (404) to callers outside those groups."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from flowdeck.api.deps import BaseUrlDep, PrincipalDep, ServicesDep
from flowdeck.services.pipelines import galaxy_tools
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.pipelines.site_tools import pipeline_tools, site_tools
from flowdeck.services.runs.pipeline_runs import visible_pipeline, visible_pipelines, visible_versions

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


def _summary(pipeline: Pipeline, base: str, versions: list[str]) -> dict[str, Any]:
    return {
        **pipeline.as_dict(),
        "versions": versions,
        "links": {
            "self": f"{base}/pipelines/{pipeline.name}",
            "schema": f"{base}/pipelines/{pipeline.name}/schema",
        },
    }


@router.get("")
async def list_pipelines(services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """The newest version of every pipeline the caller may run."""
    body = [
        _summary(p, base, [str(v.version) for v in visible_versions(services, principal, p.name)])
        for p in visible_pipelines(services, principal)
    ]
    return JSONResponse({"pipelines": body, "total": len(body)})


@router.get("/{name}")
async def get_pipeline(name: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """A pipeline's newest version, with every version listed."""
    newest = visible_pipeline(services, principal, name)
    versions = visible_versions(services, principal, name)
    body = _summary(newest, base, [str(p.version) for p in versions])
    body["all_versions"] = [p.as_dict() for p in versions]
    used = pipeline_tools(newest)
    if used:  # the site's version of each tool the pipeline uses (None: not installed here)
        have = await asyncio.to_thread(site_tools, services.settings)
        body["tools"] = {tool: have.get(tool) for tool in used}
    return JSONResponse(body)


@router.get("/{name}/schema")
async def pipeline_schema(
    name: str, services: ServicesDep, principal: PrincipalDep, version: str | None = None
) -> JSONResponse:
    """The parameters' JSON Schema 2020-12 (defaults included); a Galaxy tool's is Galaxy's own."""
    pipeline = visible_pipeline(services, principal, name, version)
    return JSONResponse(await galaxy_tools.schema(services, pipeline), media_type="application/schema+json")
