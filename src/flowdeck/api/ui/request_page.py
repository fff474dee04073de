"""A request's page (seed 001): its state, each sample's run live, its request-level step, and
cancel with confirmation. It reads through the requests service as ``GET /requests/{id}`` does
(the same visibility: another group's request is "Not found") and cancels as
``POST /requests/{id}/cancel`` does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import views, web
from flowdeck.domain.filters import RequestFilter
from flowdeck.domain.principal import Principal
from flowdeck.domain.states import State, is_terminal, simple_state
from flowdeck.errors import InvalidInput
from flowdeck.services.core import paging
from flowdeck.services.core.context import AppContext
from flowdeck.services.requests import service as request_service
from flowdeck.services.runs.state_machine import REQUEST_STATES

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)
PAGE_SIZE = 50
LIST_FILTERS = ("state", "pipeline", "group")


async def _live(request: Request, request_id: str, page_token: str | None) -> dict[str, Any]:
    """What the page and its polled part show: the request, its counts, one page of its runs."""
    user = await web.require_user(request)
    services = web.services_of(request)
    found = await request_service.detail(services, request_id, user, PAGE_SIZE, page_token or None)
    state = State(found["aggregate"]["state"])
    total = found["total_runs"]
    return {
        "req": found,
        "created": views.when(datetime.fromisoformat(found["created_at"])),
        "state": {"state": state.value, "word": simple_state(state), "ended": is_terminal(state)},
        "counts": {simple_state(State(s)): n for s, n in sorted(found["aggregate"]["counts"].items()) if n},
        "runs": [_run(run, total) for run in found["runs"]],
        "step": await _step(services, user, found),
        "page_token": page_token or "",
        "next_token": found["next_page_token"],
    }


def _run(run: dict[str, Any], total: int) -> dict[str, Any]:
    state = State(run["state"])
    return {
        "id": run["run_id"],
        "url": f"{web.PREFIX}/runs/{run['run_id']}",
        "row": run["request_index"] + 1,
        "sample": run["sample_id"] or run["dataset_id"] or "",
        "state": state.value,
        "word": simple_state(state),
        "error": run["error_message"] or "",
        "is_step": run["request_index"] == total,
    }


async def _step(services: AppContext, user: Principal, found: dict[str, Any]) -> dict[str, Any] | None:
    """The request-level step (docs/adr/0019): its state word and, once created, its run. The step
    run's request_index is ``total_runs``, so a page token at that position reads it alone."""
    if found["step_state"] is None:
        return None
    run = None
    if found["step_state"] == "created":
        token = paging.encode_position(found["total_runs"])
        page = await request_service.detail(services, found["request_id"], user, 1, token)
        run = next((_run(r, found["total_runs"]) for r in page["runs"]), None)
    return {"state": found["step_state"], "run": run}


# A declared page_token also makes these pages take turns with the API's lists (api/admission.py).
@router.get("/requests")
async def requests_page(request: Request, page_token: Annotated[str | None, Query()] = None) -> Response:
    """The requests the caller may see, newest first, as ``GET /requests`` lists them."""
    user = await web.require_user(request)
    chosen = {name: value for name in LIST_FILTERS if (value := request.query_params.get(name, "").strip())}
    if chosen.get("state", REQUEST_STATES[0]) not in REQUEST_STATES:
        raise InvalidInput(f"state must be one of {', '.join(REQUEST_STATES)}")
    flt = RequestFilter(
        state=chosen.get("state"), pipeline_name=chosen.get("pipeline"), research_group=chosen.get("group")
    )
    services = web.services_of(request)
    rows, next_token = await request_service.list_page(services, user, flt, PAGE_SIZE, page_token or None)
    return web.render(
        request,
        "requests.html",
        requests=[{**request_service.view(row), "created": views.when(row.created_at)} for row in rows],
        filters=chosen,
        states=REQUEST_STATES,
        groups=sorted(user.groups),
        page_token=page_token or "",
        next_token=next_token,
    )


@router.get("/requests/{request_id}")
async def request_page(
    request_id: str, request: Request, page_token: Annotated[str | None, Query()] = None
) -> Response:
    return web.render(request, "request.html", **await _live(request, request_id, page_token))


@router.get("/requests/{request_id}/live")
async def request_live(
    request_id: str, request: Request, page_token: Annotated[str | None, Query()] = None
) -> Response:
    """The state, counts and runs alone, for htmx to swap in every few seconds."""
    return web.render(request, "_request_live.html", **await _live(request, request_id, page_token))


@router.get("/requests/{request_id}/cancel")
async def confirm_cancel(request_id: str, request: Request) -> Response:
    """The confirmation page of a cancel (a plain form: no script needed)."""
    return web.render(request, "request_cancel.html", **await _live(request, request_id, None))


@router.post("/requests/{request_id}/cancel")
async def cancel(request_id: str, request: Request) -> Response:
    await web.form(request)
    user = await web.require_user(request)
    await request_service.cancel(web.services_of(request), request_id, user)
    return RedirectResponse(f"{web.PREFIX}/requests/{request_id}", status_code=303)
