"""The runs pages: every run the caller may see (jobs and WES runs alike), and one run.

Each route calls the service functions the API routes call (``services.runs``, ``services.jobs``):
the same visibility rule, the same keyset pages, the same cancel and rerun.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from flowdeck.api.deps import base_url
from flowdeck.api.ui import views, web
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.states import SIMPLE_STATES, is_terminal
from flowdeck.errors import InvalidInput, NotFound
from flowdeck.services.execution.dispatch_now import dispatch_now
from flowdeck.services.runs import jobs as job_service
from flowdeck.services.runs import results
from flowdeck.services.runs import service as run_service

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)
PAGE_SIZE = 50
TASKS_SHOWN = 200
FILTERS = ("state", "pipeline", "group", "dataset", "tag", "request", "text")
MAX_TEXT = 200


def _filters(request: Request) -> dict[str, str]:
    return {name: value for name in FILTERS if (value := request.query_params.get(name, "").strip())}


def _run_filter(chosen: dict[str, str]) -> RunFilter:
    """The API's RunFilter for the list's form fields (a state is one of the jobs API's words)."""
    states = None
    if "state" in chosen:
        if chosen["state"] not in SIMPLE_STATES:
            raise InvalidInput(f"state must be one of {', '.join(sorted(SIMPLE_STATES))}")
        states = SIMPLE_STATES[chosen["state"]]
    tags = None
    if "tag" in chosen:
        key, colon, value = chosen["tag"].partition(":")
        if not colon or not key:
            raise InvalidInput("a tag filter is key:value")
        tags = {key: value}
    if len(chosen.get("text", "")) > MAX_TEXT:
        raise InvalidInput(f"search for at most {MAX_TEXT} characters of a description")
    return RunFilter(
        description_contains=chosen.get("text"),
        states=states,
        tags=tags,
        pipeline_name=chosen.get("pipeline"),
        research_group=chosen.get("group"),
        dataset_id=chosen.get("dataset"),
        request_id=chosen.get("request"),
    )


async def _page(request: Request, page_token: str | None) -> dict[str, Any]:
    user = await web.require_user(request)
    chosen = _filters(request)
    token = page_token or None
    services = web.services_of(request)
    rows, next_token = await run_service.list_page(services, user, _run_filter(chosen), PAGE_SIZE, token)
    return {
        "runs": [views.run_row(row) for row in rows],
        "filters": chosen,
        "page_token": token or "",
        "next_token": next_token,
        "states": sorted(SIMPLE_STATES),
        "groups": sorted(user.groups),
    }


# A declared page_token also makes these pages take turns with the API's lists (api/admission.py).
@router.get("/")
async def runs_page(request: Request, page_token: Annotated[str | None, Query()] = None) -> Response:
    return web.render(request, "runs.html", **await _page(request, page_token))


@router.get("/rows")
async def runs_rows(request: Request, page_token: Annotated[str | None, Query()] = None) -> Response:
    """The list's rows alone, for htmx to swap in every few seconds."""
    return web.render(request, "_rows.html", **await _page(request, page_token))


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    user = await web.require_user(request)
    services = web.services_of(request)
    row = await run_service.get_visible(services, run_id, user)
    events = await job_service.events(services, run_id, user)
    tasks, more_tasks = await run_service.task_page(services, run_id, user, TASKS_SHOWN, None)
    return web.render(
        request,
        "run.html",
        run=views.run_detail(row),
        timeline=[views.event(e) for e in events],
        tasks=[views.task(t) for t in tasks],
        more_tasks=bool(more_tasks),
    )


@router.get("/runs/{run_id}/state")
async def run_state(run_id: str, request: Request, shown: str = "") -> Response:
    """The run's state badge for htmx to poll; once the run ends, the page reloads to show outputs."""
    user = await web.require_user(request)
    row = await run_service.get_visible_state(web.services_of(request), run_id, user)
    answer = web.render(request, "_state.html", run=views.state_of(row))
    if shown and shown != row.state and is_terminal(row.state):
        answer.headers["HX-Refresh"] = "true"
    return answer


@router.get("/runs/{run_id}/{action}")
async def confirm(run_id: str, action: str, request: Request) -> Response:
    """The confirmation page of a cancel or a rerun (a plain form: no script needed)."""
    if action not in ("cancel", "rerun"):
        raise NotFound("no such page")
    user = await web.require_user(request)
    services = web.services_of(request)
    row = await run_service.get_visible(services, run_id, user)
    resumable = action == "rerun" and job_service.can_resume(services, row)
    return web.render(request, "confirm.html", run=views.run_detail(row), action=action, resumable=resumable)


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, request: Request) -> Response:
    await web.form(request)
    user = await web.require_user(request)
    await run_service.cancel(web.services_of(request), run_id, user)
    return RedirectResponse(f"{web.PREFIX}/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/rerun")
async def rerun(run_id: str, request: Request) -> Response:
    posted = await web.form(request)
    user = await web.require_user(request)
    services = web.services_of(request)
    new_id = await job_service.rerun(services, run_id, user, resume=posted.get("resume") == "on")
    await dispatch_now(services, new_id)
    return RedirectResponse(f"{web.PREFIX}/runs/{new_id}", status_code=303)


@router.get("/runs/{run_id}/logs/{stream}")
async def run_log(run_id: str, stream: str, request: Request) -> Response:
    """The run's log: from storage once it is there (as the API serves it), else the run folder."""
    user = await web.require_user(request)
    column = views.stream_column(stream)
    services = web.services_of(request)
    row = await run_service.get_visible(services, run_id, user)
    if (key := results.log_key(row, stream)) is not None:
        return await _stored(request, key)
    return FileResponse(
        run_service.log_file(services, row.id, getattr(row, column)), media_type="text/plain; charset=utf-8"
    )


@router.get("/runs/{run_id}/tasks/{task_id}/logs/{stream}")
async def task_log(run_id: str, task_id: str, stream: str, request: Request) -> Response:
    user = await web.require_user(request)
    column = views.stream_column(stream)
    services = web.services_of(request)
    row = await run_service.get_visible(services, run_id, user)
    task = await run_service.get_task(services, run_id, task_id, user)
    if task[column] and (key := results.log_key(row, stream, task["backend_task_id"])) is not None:
        return await _stored(request, key)
    return FileResponse(run_service.log_file(services, row.id, task[column]), media_type="text/plain; charset=utf-8")


@router.get("/runs/{run_id}/outputs/{index}")
async def output(run_id: str, index: str, request: Request) -> Response:
    """An output file: a redirect to its stored copy (runs ended before results went to storage:
    from the run's folder)."""
    user = await web.require_user(request)
    services = web.services_of(request)
    row = await run_service.get_visible(services, run_id, user)
    if not index.isdigit():
        raise NotFound(f"run {run_id} has no output {index}")
    if row.results is not None and not row.results.get("live"):
        return await _stored(request, results.output_key(row, int(index)))
    files = row.output_files or []
    if int(index) >= len(files):
        raise NotFound(f"run {run_id} has no output {index}")
    path = run_service.log_file(services, row.id, files[int(index)].get("location"))
    return FileResponse(path, filename=path.name)


async def _stored(request: Request, key: str) -> Response:
    """A 307 to the store's pre-signed URL of ``key``, as the API's result routes answer."""
    link = results.link(web.services_of(request), key, await base_url(request))
    return RedirectResponse(link, status_code=307)


@router.get("/{rest:path}")
async def no_such_page(rest: str) -> Response:
    """Any other path under /ui/: the UI's 404 page, not the API's problem document."""
    raise NotFound("there is no such page")
