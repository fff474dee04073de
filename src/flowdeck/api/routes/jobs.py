"""The jobs API (seeds 000 and 002): submit, list, read, cancel, rerun, events.

A seed-000 job is dispatched inline with a bounded wait: the run is stored
first, then claimed with a lease and handed to the engine. If the engine
answers in time the reply carries its id (201); if it is slow or down the
reply is 202 ``queued`` and the worker finishes the dispatch (an inline
dispatch cut short leaves the run INITIALIZING without an engine id, which
the worker takes over when the lease expires).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from flowdeck.api.deps import BaseUrlDep, PrincipalDep, ServicesDep
from flowdeck.api.http_body import body_schema, json_model, json_within
from flowdeck.api.idempotency import idempotent
from flowdeck.api.job_views import event_view, job_view
from flowdeck.api.readable_json import ReadableJSONResponse
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.states import SIMPLE_STATES, State
from flowdeck.errors import EngineError, Problem, ValidationFailed
from flowdeck.services.core.idempotency import fingerprint
from flowdeck.services.execution.dispatch_now import dispatch_now
from flowdeck.services.runs import jobs as job_service
from flowdeck.services.runs import ro_crate
from flowdeck.services.runs import service as run_service

router = APIRouter(prefix="/jobs", tags=["jobs"])
_FAILED = {State.EXECUTOR_ERROR.value, State.SYSTEM_ERROR.value}


@router.post("", status_code=201)
async def submit_job(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
    dry_run: Annotated[bool, Query(description="Validate and show the resolved run without storing it.")] = False,
) -> JSONResponse:
    """Seed 000 ``{dataset_id, workflow_name, overwrite?, parameters?}`` or seed 002
    ``{pipeline_name, parameters, research_group, description}``."""
    body = await json_within(request, services.settings.max_upload_bytes)
    planned = await job_service.plan(services, body, principal)
    if dry_run:
        return ReadableJSONResponse(planned.preview())

    async def create() -> JSONResponse:
        run_id = await job_service.submit(services, planned, principal)
        await dispatch_now(services, run_id)
        row = await run_service.get_visible(services, run_id, principal)
        if row.state in _FAILED and row.backend_run_id is None:
            raise EngineError(f"the engine refused the job: {row.error_message}", id=run_id, job=job_view(row, base))
        status = 201 if row.backend_run_id else 202
        return ReadableJSONResponse(
            job_view(row, base), status_code=status, headers={"Location": f"{base}/jobs/{run_id}"}
        )

    return await idempotent(request, services, principal, lambda: fingerprint(body), create)


def _states(values: list[str] | None) -> frozenset[State] | None:
    if not values:
        return None
    wanted: set[State] = set()
    for value in (v.strip() for raw in values for v in raw.split(",") if v.strip()):
        if value.lower() in SIMPLE_STATES:
            wanted |= SIMPLE_STATES[value.lower()]
        elif value.upper() in State.__members__:
            wanted.add(State(value.upper()))
        else:
            words = ", ".join(sorted(SIMPLE_STATES))
            raise ValidationFailed(
                f"unknown state {value!r}; use {words} or a WES state",
                [Problem("/state", f"unknown state {value!r}", "enum")],
            )
    return frozenset(wanted)


@router.get("")
async def list_jobs(
    services: ServicesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
    dataset_id: str | None = None,
    pipeline_name: str | None = None,
    research_group: str | None = None,
    state: Annotated[
        list[str] | None, Query(description="queued, in_progress, completed, failed, canceled or WES states.")
    ] = None,
    page_size: Annotated[int | None, Query(description="Jobs per page.")] = None,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page.")] = None,
) -> JSONResponse:
    """Jobs the caller may see, newest first, in keyset pages; ``total`` counts all matches."""
    flt = RunFilter(
        dataset_id=dataset_id, pipeline_name=pipeline_name, research_group=research_group, states=_states(state)
    )
    rows, token = await run_service.list_page(services, principal, flt, page_size, page_token or None)
    total = await job_service.total(services, principal, flt)
    return ReadableJSONResponse({"jobs": [job_view(r, base) for r in rows], "total": total, "next_page_token": token})


@router.get("/{job_id}")
async def get_job(job_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    return ReadableJSONResponse(job_view(await run_service.get_visible(services, job_id, principal), base))


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep) -> JSONResponse:
    """Ask for a cancel (202; the worker carries it out). An ended job is left as it is: 200, with a
    ``detail`` saying there was nothing to cancel."""
    outcome = await run_service.cancel(services, job_id, principal)
    body = {**job_view(outcome.row, base), "detail": outcome.detail}
    return ReadableJSONResponse(body, status_code=200 if outcome.ended else 202)


class RerunBody(BaseModel):
    """``POST /jobs/{id}/rerun`` (the body is optional)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    resume: bool = Field(
        False, description="Re-use the finished steps of the ended job (Snakemake, cwltool, Toil); its tasks say which."
    )


@router.post("/{job_id}/rerun", status_code=201, openapi_extra=body_schema(RerunBody, required=False))
async def rerun_job(
    job_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
    body: Annotated[RerunBody, Depends(json_model(RerunBody, optional=True))],
) -> JSONResponse:
    """A new job running the same thing, linked by ``rerun_of``; with ``resume``, re-using the
    finished steps of this one."""
    run_id = await job_service.rerun(services, job_id, principal, resume=body.resume)
    await dispatch_now(services, run_id)
    row = await run_service.get_visible(services, run_id, principal)
    status = 201 if row.backend_run_id or row.state in _FAILED else 202
    return ReadableJSONResponse(job_view(row, base), status_code=status, headers={"Location": f"{base}/jobs/{run_id}"})


@router.get("/{job_id}/events")
async def job_events(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """The job's audit trail: every state change with time, reason and actor."""
    rows = await job_service.events(services, job_id, principal)
    return JSONResponse({"id": job_id, "events": [event_view(r) for r in rows]})


@router.get("/{job_id}/ro-crate", response_class=FileResponse)
async def job_ro_crate(job_id: str, services: ServicesDep, principal: PrincipalDep) -> FileResponse:
    """The ended job as a Workflow Run RO-Crate, zipped (docs/ro-crate.md); 409 until it has ended."""
    path = await ro_crate.export_run(services, job_id, principal)
    filename = ro_crate.crate_filename("run", job_id)
    return FileResponse(path, media_type="application/zip", filename=filename, background=BackgroundTask(path.unlink))
