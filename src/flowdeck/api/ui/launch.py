"""Launching a pipeline from the browser: the catalog, a pipeline's form made from its parameter
schema (the one ``GET /pipelines/{name}/schema`` serves: Galaxy's for a Galaxy tool), a check
(the dry run) and the submit. Both go through the jobs service, as ``POST /jobs`` does: the
same visibility, the same validation, the same 422s (shown beside the fields), the same
dispatch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import web
from flowdeck.api.ui.launch_form import FormField, parameters_of, pipeline_form
from flowdeck.domain.principal import Principal
from flowdeck.errors import ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution.dispatch_now import dispatch_now
from flowdeck.services.runs import jobs as job_service
from flowdeck.services.runs.pipeline_runs import visible_pipelines, visible_versions

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)


@router.get("/launch")
async def catalog(request: Request) -> Response:
    """Every pipeline the caller may run, newest versions."""
    user = await web.require_user(request)
    pipelines = visible_pipelines(web.services_of(request), user)
    return web.render(request, "launch_list.html", pipelines=pipelines)


@router.get("/launch/{name}")
async def launch_form(name: str, request: Request, version: str | None = None) -> Response:
    """The form of the pipeline's newest version, or of ``version``."""
    user = await web.require_user(request)
    services = web.services_of(request)
    pipeline, fields = await pipeline_form(services, user, name, version)
    return _form_page(request, pipeline, fields, {}, _versions(services, user, name))


@router.post("/launch/{name}")
async def launch(name: str, request: Request) -> Response:
    """``action=check``: the dry run shown under the form; otherwise submit and go to the run."""
    posted = await web.form(request)
    user = await web.require_user(request)
    services = web.services_of(request)
    pipeline, fields = await pipeline_form(services, user, name, posted.get("version"))
    versions = _versions(services, user, name)
    body = {
        "pipeline_name": name,
        "pipeline_version": str(pipeline.version),
        "parameters": parameters_of(fields, posted),
        "research_group": posted.get("research_group") or None,
        "description": posted.get("description") or None,
    }
    try:
        planned = await job_service.plan(services, body, user)
    except ValidationFailed as exc:
        return _form_page(request, pipeline, fields, posted, versions, error=exc, status_code=exc.status_code)
    if posted.get("action") == "check":
        return _form_page(request, pipeline, fields, posted, versions, preview=planned.preview())
    run_id = await job_service.submit(services, planned, user)
    await dispatch_now(services, run_id)
    return RedirectResponse(f"{web.PREFIX}/runs/{run_id}", status_code=303)


def _versions(services: AppContext, user: Principal, name: str) -> list[str]:
    return [str(p.version) for p in visible_versions(services, user, name)]


def _form_page(
    request: Request,
    pipeline: Any,
    fields: list[FormField],
    posted: dict[str, str],
    versions: list[str],
    error: ValidationFailed | None = None,
    preview: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    problems: dict[str, str] = {}
    for problem in error.problems if error else []:
        field = problem.pointer.removeprefix("/parameters").strip("/").split("/")[0]
        problems.setdefault(field or "_", problem.message)
    return web.render(
        request,
        "launch.html",
        status_code=status_code,
        pipeline=pipeline,
        versions=versions,
        fields=fields,
        posted=posted,
        error=error.detail if error else None,
        problems=problems,
        preview=preview,
    )
