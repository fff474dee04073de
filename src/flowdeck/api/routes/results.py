"""A run's stored results through the API: the outputs archive, and deleting an ended run.

The single output and log links (``…/outputs/{index}``, ``…/logs/{stream}``) are in the WES
routes; they answer with a redirect to the store (:func:`stored`) once the run has ended.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.background import BackgroundTask

from flowdeck.api.deps import PrincipalDep, ServicesDep
from flowdeck.api.wes_views import WES
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import purge, results
from flowdeck.services.runs import service as run_service

wes_router = APIRouter(prefix=WES, tags=["flowdeck extensions"])
jobs_router = APIRouter(prefix="/jobs", tags=["jobs"])
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The run has not ended."}}


def stored(services: AppContext, key: str, base: str) -> RedirectResponse:
    """A 307 to the store's pre-signed URL of ``key``: the bytes never pass through a worker."""
    return RedirectResponse(results.link(services, key, base), status_code=307)


async def _archive(services: AppContext, run_id: str, principal: PrincipalDep) -> FileResponse:
    run = await run_service.get_visible(services, run_id, principal)
    path = await results.archive_of(services, run)
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{run_id}-outputs.zip",
        background=BackgroundTask(path.unlink),
    )


@wes_router.get("/runs/{run_id}/outputs.zip", response_class=FileResponse, responses=CONFLICT)
async def run_outputs_archive(run_id: str, services: ServicesDep, principal: PrincipalDep) -> FileResponse:
    """Every output file of an ended run as one zip (``<run_id>/<name>``); 409 until it has ended."""
    return await _archive(services, run_id, principal)


@jobs_router.get("/{job_id}/outputs.zip", response_class=FileResponse, responses=CONFLICT)
async def job_outputs_archive(job_id: str, services: ServicesDep, principal: PrincipalDep) -> FileResponse:
    """Every output file of an ended job as one zip; 409 until it has ended."""
    return await _archive(services, job_id, principal)


@wes_router.delete("/runs/{run_id}", responses=CONFLICT, operation_id="DeleteRun")
async def delete_run(run_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Delete an ended run: its stored files and its rows; an audit row is kept (docs/storage.md).
    409 while it has not ended (cancel it first)."""
    gone = await purge.delete(services, run_id, principal)
    return JSONResponse({"run_id": run_id, **gone.summary()})


@jobs_router.delete("/{job_id}", responses=CONFLICT)
async def delete_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Delete an ended job: its stored files and its rows; an audit row is kept. 409 while it runs."""
    gone = await purge.delete(services, job_id, principal)
    return JSONResponse({"id": job_id, **gone.summary()})
