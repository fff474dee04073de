"""Pipelines that run one Galaxy tool: their schema comes from Galaxy, and so does their check.

A ``galaxy_tool`` pipeline's parameters are the tool's request parameters. Their
JSON Schema is the one Galaxy publishes (``GET /api/tools/{id}/parameter_request_schema``),
fetched through the Galaxy backend and cached there per tool version. A strict
request is checked against it before anything is sent; a relaxed one
(``strict: false``) goes to Galaxy as ``strict: false`` and Galaxy converts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.backends.galaxy.tool_inputs import convert_inputs, request_body_preview
from flowdeck.errors import EngineUnavailable, InvalidInput
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.runs.service import NewRun


def is_tool(pipeline: Pipeline | None) -> bool:
    return pipeline is not None and pipeline.target.kind == "galaxy_tool"


def _backend(services: AppContext, pipeline: Pipeline) -> GalaxyBackend:
    backend = services.backends.get(pipeline.backend)
    if not isinstance(backend, GalaxyBackend):
        raise InvalidInput(f"pipeline {pipeline.name} runs a Galaxy tool, and backend {pipeline.backend} is not Galaxy")
    return backend


async def schema(services: AppContext, pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's parameter schema: Galaxy's for a tool, the catalog's otherwise."""
    if not is_tool(pipeline):
        return pipeline.schema()
    backend = _backend(services, pipeline)
    return await asyncio.to_thread(backend.tool_schema, pipeline.target.value, pipeline.target.tool_version)


async def check(services: AppContext, new: NewRun) -> dict[str, Any]:
    """Check a tool run as its submit will (strict: against Galaxy's schema) and return the
    tool request flowdeck will post, as a dry run shows it."""
    target = new.pipeline_target
    inputs = convert_inputs(new.workflow_params, new.dataset, target)
    if target.get("strict", True) is not False:
        backend = services.backends.get(new.workflow_engine or "galaxy")
        if isinstance(backend, GalaxyBackend):
            # Galaxy checks a strict request itself too: a slow Galaxy must not refuse the run
            with contextlib.suppress(EngineUnavailable):
                await asyncio.to_thread(backend.tools.check, str(target["tool"]), target.get("tool_version"), inputs)
    return request_body_preview(target, inputs)
