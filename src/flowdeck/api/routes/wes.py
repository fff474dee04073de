"""GA4GH WES 1.1.0: the eight operations, plus the log files their URLs point at."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask

from flowdeck import __version__
from flowdeck.api import wes_schemas as schemas
from flowdeck.api.deps import BaseUrlDep, PrincipalDep, PublicPrincipalDep, ServicesDep, caller
from flowdeck.api.http_body import body_schema, json_model
from flowdeck.api.http_route import RequestRoute
from flowdeck.api.idempotency import idempotent
from flowdeck.api.readable_json import ReadableJSONResponse
from flowdeck.api.routes.jobs import RerunBody
from flowdeck.api.routes.results import stored
from flowdeck.api.wes_form import TEXT_FIELDS, read_run_request
from flowdeck.api.wes_views import WES, run_log, run_summary, task_log
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput, NotFound
from flowdeck.services.core.idempotency import fingerprint_run
from flowdeck.services.execution import staging
from flowdeck.services.pipelines.site_tools import site_tools
from flowdeck.services.runs import jobs as job_service
from flowdeck.services.runs import results, ro_crate, run_counts
from flowdeck.services.runs import service as run_service

router = APIRouter(prefix=WES, tags=["GA4GH WES"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in (
        (400, "The request is malformed."),
        (401, "The request is unauthorized."),
        (403, "The requester is not authorized to perform this action."),
        (404, "The requested workflow run wasn't found."),
        (500, "An unexpected error occurred."),
    )
}
RUN_FORM = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "string"} for name in TEXT_FIELDS},
                        "workflow_attachment": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            },
            "application/json": {"schema": schemas.RunRequest.model_json_schema()},
        },
    }
}
STATE_PARAM = Query(description="Extension: only runs in these states (comma-separated or repeated).")
TAG_PARAM = Query(description="Extension: only runs with this tag, as key:value (repeat for all of several).")
# Read as text and parsed strictly: lax int parsing would accept " 2" or "2\r", and a malformed
# value on ListTasks must answer 404 like its other paging errors (the spec documents no 400 there).
PAGE_SIZE_PARAM = Query(description="Items per page: an integer from 1 to the configured maximum.")
INTEGER = re.compile(r"-?[0-9]{1,19}")


# What FastAPI writes for a declared ``run_id: str`` path parameter, its 422 entry included:
# get_run_status reads the parameter itself and documents it the same way.
RUN_ID_IN_PATH: dict[str, Any] = {
    "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "title": "Run Id"}}],
    "responses": {
        "422": {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        }
    },
}


def include(app: FastAPI) -> None:
    """The WES operations on ``app``; call it before any other route is added.

    GetRunStatus, the route clients poll, and RunWorkflow are the app's own first routes rather
    than ``router``'s: routes are matched in order, each miss costs ~1 µs, and FastAPI matches an
    included router's routes twice per request (the router as a whole, then its route).
    """
    hot: dict[str, Any] = {"route_class_override": RequestRoute, "tags": router.tags, "responses": ERRORS}
    app.router.add_api_route(
        f"{WES}/runs/{{run_id}}/status",
        get_run_status,
        methods=["GET"],
        response_model=schemas.RunStatus,
        operation_id="GetRunStatus",
        openapi_extra=RUN_ID_IN_PATH,
        **hot,
    )
    app.router.add_api_route(
        f"{WES}/runs",
        run_workflow,
        methods=["POST"],
        response_model=schemas.RunId,
        operation_id="RunWorkflow",
        openapi_extra=RUN_FORM,
        **hot,
    )
    app.include_router(router)


async def get_run_status(request: Request) -> JSONResponse:
    # run_id is not a declared parameter: FastAPI would validate that a path segment is a
    # string, ~10 µs of a ~60 µs poll.
    run_id: str = request.path_params["run_id"]
    services, principal = await caller(request)
    row = await run_service.get_visible_state(services, run_id, principal)
    return JSONResponse({"run_id": row.id, "state": row.state.value})


@router.get("/service-info", response_model=schemas.ServiceInfo, responses=ERRORS, operation_id="GetServiceInfo")
async def service_info(services: ServicesDep, principal: PublicPrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """Service metadata, workflow types and engines of the enabled backends, and run counts.

    Open to anyone in every auth mode: a WES client reads ``auth_instructions_url`` here before it
    can sign in. The counts cover the runs the caller may see (none for an anonymous caller)."""
    counts = await run_counts.by_state(services, principal)
    registry = services.backends
    names = registry.names()
    versions = await asyncio.gather(*(asyncio.to_thread(registry.engine_version, name) for name in names))
    tools = await asyncio.to_thread(site_tools, services.settings)
    engines: dict[str, dict[str, list[str]]] = {
        name: {"workflow_engine_version": [version]} for name, version in zip(names, versions, strict=True)
    }
    parameters = []
    for backend in registry.all():
        for name, (kind, default) in backend.engine_parameter_defaults().items():
            parameters.append({"name": f"{backend.name}.{name}", "type": kind, "default_value": default})
    settings = services.settings
    simulated = [b.name for b in registry.all() if b.is_simulation]
    body: dict[str, Any] = {
        "id": "org.flowdeck.wes",
        "name": settings.service_name,
        "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
        "description": "flowdeck: workflow runs for bioinformatics groups on Galaxy, cwltool, Snakemake, Toil and miniwdl.",
        "organization": {"name": settings.organization_name, "url": settings.organization_url},
        "documentationUrl": f"{base}/docs",
        "environment": settings.environment,
        "version": __version__,
        "workflow_type_versions": {t: {"workflow_type_version": v} for t, v in registry.workflow_types().items()},
        "supported_wes_versions": ["1.1.0"],
        # Where a workflow may come from, and what inputs are staged from (services.staging).
        "supported_filesystem_protocols": sorted(
            {*run_service.remote_workflow_schemes(settings), *staging.schemes(settings)}
        ),
        "workflow_engine_versions": engines,
        "default_workflow_engine_parameters": parameters,
        "system_state_counts": {state.value: counts.get(state.value, 0) for state in State},
        "auth_instructions_url": f"{base}/auth/instructions",
        "tags": {
            "auth_mode": settings.auth_mode,
            "simulated_engines": ",".join(simulated),
            # Which isolation local engine runs have (docs/adr/0010).
            "isolation": "bubblewrap sandbox per run" if settings.sandbox else "none (FLOWDECK_SANDBOX=false)",
            # Whether steps that ask for a container get one (docs/adr/0013).
            "containers": "podman (CWL DockerRequirement, WDL runtime container)"
            if settings.containers
            else "off (FLOWDECK_CONTAINERS=false)",
            # The command-line tools pipelines use that this site has (docs/pipelines.md).
            "tools": ", ".join(f"{tool} {version}" for tool, version in tools.items() if version) or "none",
        },
    }
    if settings.auth_mode == "oidc" and settings.oidc_cli_client_id:
        # What `flowdeck login --oidc` signs in with (the device flow, docs/cli.md).
        body["tags"] |= {
            "oidc_issuer": settings.oidc_issuer or "",
            "oidc_cli_client_id": settings.oidc_cli_client_id,
            "oidc_cli_scopes": settings.oidc_cli_scopes,
        }
    if settings.contact_url:
        body["contactUrl"] = settings.contact_url
    return JSONResponse(body)


@router.get("/runs", response_model=schemas.RunListResponse, responses=ERRORS, operation_id="ListRuns")
async def list_runs(
    services: ServicesDep,
    principal: PrincipalDep,
    page_size: Annotated[str | None, PAGE_SIZE_PARAM] = None,
    page_token: Annotated[str | None, Query(description="Token from the previous page's next_page_token.")] = None,
    state: Annotated[list[str] | None, STATE_PARAM] = None,
    tag: Annotated[list[str] | None, TAG_PARAM] = None,
) -> JSONResponse:
    """Runs the caller may see, newest first, in stable keyset pages."""
    flt = RunFilter(states=_states(state), tags=_tags(tag))
    size = _page_size(page_size)
    rows, token = await run_service.summary_page(services, principal, flt, size, page_token or None)
    return ReadableJSONResponse({"runs": [run_summary(row) for row in rows], "next_page_token": token})


async def run_workflow(request: Request) -> JSONResponse:
    """Accept a run: validate, store, answer with its id. The worker starts it."""
    services, principal = await caller(request)
    started = time.perf_counter()
    new = await read_run_request(request, services.settings.max_upload_bytes)

    async def create() -> JSONResponse:
        return JSONResponse({"run_id": await run_service.submit(services, new, principal)})

    response = await idempotent(request, services, principal, lambda: fingerprint_run(new), create)
    services.metrics.submit_seconds.labels("wes").observe(time.perf_counter() - started)
    return response


@router.get("/runs/{run_id}", response_model=schemas.RunLog, responses=ERRORS, operation_id="GetRunLog")
async def get_run_log(run_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    row = await run_service.get_visible(services, run_id, principal)
    return ReadableJSONResponse(run_log(row, base))


@router.post("/runs/{run_id}/cancel", response_model=schemas.RunId, responses=ERRORS, operation_id="CancelRun")
async def cancel_run(run_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Ask for a cancel (the run goes to CANCELING; the worker stops it). Idempotent. A run that
    already ended is left as it is: the answer (still 200, the only success the spec documents)
    carries its ``state`` and a ``detail`` saying there was nothing to cancel."""
    outcome = await run_service.cancel(services, run_id, principal)
    return JSONResponse({"run_id": outcome.row.id, "state": outcome.row.state.value, "detail": outcome.detail})


@router.post(
    "/runs/{run_id}/rerun",
    response_model=schemas.RunId,
    responses={**ERRORS, 409: {"model": schemas.ErrorResponse, "description": "Resume: the run has not ended yet."}},
    operation_id="RerunRun",
    tags=["flowdeck extensions"],
    openapi_extra=body_schema(RerunBody, required=False),
)
async def rerun_run(
    run_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[RerunBody, Depends(json_model(RerunBody, optional=True))],
) -> JSONResponse:
    """Extension: a new run of the same workflow, parameters and attachments, linked by
    ``rerun_of``; with ``{"resume": true}``, one that re-uses the finished steps of this ended run
    (docs/jobs.md). Like RunWorkflow, it answers at once; the worker starts the run."""
    return JSONResponse({"run_id": await job_service.rerun(services, run_id, principal, resume=body.resume)})


@router.get("/runs/{run_id}/tasks", response_model=schemas.TaskListResponse, responses=ERRORS, operation_id="ListTasks")
async def list_tasks(
    run_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
    page_size: Annotated[str | None, PAGE_SIZE_PARAM] = None,
    page_token: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    try:
        size = _page_size(page_size)
        rows, token = await run_service.task_page(services, run_id, principal, size, page_token or None)
    except InvalidInput as exc:
        # The spec documents no 400 here: a page that cannot be found is a 404.
        raise NotFound(exc.detail) from None
    return JSONResponse({"task_logs": [task_log(row, base) for row in rows], "next_page_token": token})


@router.get("/runs/{run_id}/tasks/{task_id}", response_model=schemas.TaskLog, responses=ERRORS, operation_id="GetTask")
async def get_task(
    run_id: str, task_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> JSONResponse:
    row = await run_service.get_task(services, run_id, task_id, principal)
    return JSONResponse(task_log(row, base))


@router.get(
    "/runs/{run_id}/logs/{stream}", responses=ERRORS, operation_id="GetRunLogFile", tags=["flowdeck extensions"]
)
async def run_log_file(
    run_id: str, stream: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> Response:
    """The run's stdout or stderr, as text: from storage once the run has ended (a redirect to
    a pre-signed URL), from the run folder while it runs (docs/storage.md)."""
    row = await run_service.get_visible(services, run_id, principal)
    key = results.log_key(row, stream) if stream in results.STREAMS else None
    if key is not None:
        return stored(services, key, base)
    path = run_service.log_file(services, row.id, getattr(row, _stream_column(stream)))
    return FileResponse(path, media_type="text/plain; charset=utf-8")


@router.get(
    "/runs/{run_id}/tasks/{task_id}/logs/{stream}",
    responses=ERRORS,
    operation_id="GetTaskLogFile",
    tags=["flowdeck extensions"],
)
async def task_log_file(
    run_id: str, task_id: str, stream: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> Response:
    """A task's stdout or stderr, as text: from storage once the run has ended, from the run
    folder while it runs."""
    column = _stream_column(stream)
    run = await run_service.get_visible(services, run_id, principal)
    task = await run_service.get_task(services, run_id, task_id, principal)
    if task[column] and (key := results.log_key(run, stream, task["backend_task_id"])) is not None:
        return stored(services, key, base)
    return FileResponse(run_service.log_file(services, run.id, task[column]), media_type="text/plain; charset=utf-8")


@router.get("/runs/{run_id}/outputs", responses=ERRORS, operation_id="ListRunOutputs", tags=["flowdeck extensions"])
async def list_outputs(run_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """Every output file of the run with its size, checksum and a download URL."""
    row = await run_service.get_visible(services, run_id, principal)
    if row.results is not None:
        run_url = f"{base}{WES}/runs/{run_id}"
        return ReadableJSONResponse(
            {"run_id": run_id, "outputs": results.outputs_view(row, run_url), "files": results.files_view(row, run_url)}
        )
    files = []
    for index, item in enumerate(row.output_files or []):
        entry = {k: item.get(k) for k in ("name", "size", "checksum") if item.get(k) is not None}
        entry["url"] = f"{base}{WES}/runs/{run_id}/outputs/{index}"
        files.append(entry)
    return ReadableJSONResponse({"run_id": run_id, "outputs": row.outputs or {}, "files": files})


@router.get(
    "/runs/{run_id}/outputs/{index}", responses=ERRORS, operation_id="GetRunOutput", tags=["flowdeck extensions"]
)
async def get_output(
    run_id: str, index: int, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> Response:
    """Download one output file: a redirect to its pre-signed URL in storage (runs ended before
    results went to storage: from the run's own folder)."""
    row = await run_service.get_visible(services, run_id, principal)
    if row.results is not None:
        return stored(services, results.output_key(row, index), base)
    files = row.output_files or []
    if not 0 <= index < len(files):
        raise NotFound(f"run {run_id} has no output {index}")
    path = run_service.log_file(services, row.id, files[index].get("location"))
    return FileResponse(path, filename=Path(path).name)


@router.get(
    "/runs/{run_id}/ro-crate",
    responses={**ERRORS, 409: {"model": schemas.ErrorResponse, "description": "The run has not ended yet."}},
    response_class=FileResponse,
    operation_id="GetRunROCrate",
    tags=["flowdeck extensions"],
)
async def run_ro_crate(run_id: str, services: ServicesDep, principal: PrincipalDep) -> FileResponse:
    """The ended run as a Workflow Run RO-Crate, zipped (docs/ro-crate.md); 409 until it has ended."""
    path = await ro_crate.export_run(services, run_id, principal)
    filename = ro_crate.crate_filename("run", run_id)
    return FileResponse(path, media_type="application/zip", filename=filename, background=BackgroundTask(path.unlink))


def _stream_column(stream: str) -> str:
    if stream not in ("stdout", "stderr"):
        raise NotFound("logs are stdout or stderr")
    return f"{stream}_path"


def _page_size(raw: str | None) -> int | None:
    """A page_size query value: an optional minus sign and ASCII digits, nothing else."""
    if raw is None:
        return None
    if not INTEGER.fullmatch(raw):
        raise InvalidInput("page_size must be an integer")
    return int(raw)


def _states(values: list[str] | None) -> frozenset[State] | None:
    if not values:
        return None
    words = [w.strip().upper() for value in values for w in value.split(",") if w.strip()]
    try:
        return frozenset(State(w) for w in words)
    except ValueError:
        raise InvalidInput(f"state must be among {', '.join(s.value for s in State)}") from None


def _tags(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag_value = value.partition(":")
        if not sep or not key:
            raise InvalidInput("tag filters are key:value")
        tags[key] = tag_value
    return tags
