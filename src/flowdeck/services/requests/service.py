"""Requests (seed 001): one submission that the worker expands into many runs.

``accept`` validates everything that can be checked at once and stores the
request in ``new``; nothing else is created. The worker expands it
(:mod:`flowdeck.services.requests.expansion`) and moves it to ``submitted``, or
to ``failed`` with a message when expansion cannot complete.

The aggregate state of a request, from its runs' WES states (:func:`aggregate_state`):

* while runs may still change (some run is not terminal, or the request is
  still ``new``): ``CANCELING`` once a cancel was asked; ``RUNNING`` when some
  run has left QUEUED; otherwise ``QUEUED``;
* a request whose samples have all completed while its request-level step is
  still to be created (``step_state`` ``waiting``, docs/adr/0019) is ``RUNNING``;
* once every run has ended: ``EXECUTOR_ERROR`` if any run failed in its
  workflow, else ``SYSTEM_ERROR`` if any failed in the system (or was
  preempted), else ``CANCELED`` if any was canceled or a cancel was asked,
  else ``SYSTEM_ERROR`` if the request itself failed, else ``COMPLETE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flowdeck.db import events as event_rows
from flowdeck.db import requests as request_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.filters import RequestFilter
from flowdeck.domain.principal import Principal
from flowdeck.domain.requests import RequestRun, RequestSummary
from flowdeck.domain.states import TERMINAL, State
from flowdeck.errors import NotFound
from flowdeck.services.core import paging
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets import inputs as dataset_inputs
from flowdeck.services.requests import steps as request_steps
from flowdeck.services.requests.items import Item, RequestInput, items_of
from flowdeck.services.runs import quotas, state_machine
from flowdeck.services.runs.pipeline_runs import build_run, visible_pipeline
from flowdeck.services.runs.service import Cancel, check_admissible, resolve_group

CANCEL_CHUNK = 200
_TERMINAL = sorted(s.value for s in TERMINAL)


async def accept(services: AppContext, principal: Principal, given: RequestInput) -> dict[str, Any]:
    """Validate the request and store it in ``new``; the worker expands it."""
    pipeline = visible_pipeline(services, principal, given.pipeline_name, given.pipeline_version)
    group = resolve_group(principal, given.research_group)
    await quotas.check_stored_bytes(services, group)
    items = await items_of(services, principal, given, pipeline)
    # The first item shows whether the pipeline can run here at all (group allowed, engine enabled).
    probe = build_run(
        services,
        pipeline,
        items[0].parameters,
        research_group=group,
        description=given.description,
        strict=True,
        origin="requests",
    )
    check_admissible(services, probe)
    for index, item in enumerate(items):  # the worker creates the runs with the owner's name only
        await dataset_inputs.check_params(services, item.parameters, principal, f"{_items_pointer(given)}/{index}")
    sample_parameters = [item.parameters for item in items]
    request_steps.check_groups(pipeline, sample_parameters, _items_pointer(given))
    step_state = request_steps.step_state_for(pipeline, sample_parameters)
    return await _store(services, principal, given, pipeline.name, str(pipeline.version), group, items, step_state)


def _items_pointer(given: RequestInput) -> str:
    """Where a request's items are, for a problem about one of them."""
    return {"samplesheet": "/rows", "samples": "/samples"}.get(_source(given), "/dataset_ids")


def _source(given: RequestInput) -> str:
    return next(s for s in ("dataset_ids", "samples", "samplesheet") if getattr(given, s) is not None)


async def _store(
    services: AppContext,
    principal: Principal,
    given: RequestInput,
    name: str,
    version: str,
    group: str | None,
    items: list[Item],
    step_state: str | None = None,
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    now = utcnow()
    spec = {
        "source": next(s for s in ("dataset_ids", "samples", "samplesheet") if getattr(given, s) is not None),
        "strict": given.strict,
        "parameters": given.parameters,
        "items": [item.as_dict() for item in items],
        "send_email_notification": given.send_email_notification,
    }
    values = {
        "id": request_id,
        "research_group": group,
        "owner": principal.name,
        "pipeline_name": name,
        "pipeline_version": version,
        "state": "new",
        "message": None,
        "spec": spec | {"description": given.description},
        "total_runs": len(items),
        "cancel_requested": False,
        "step_state": step_state,
        "created_at": now,
        "updated_at": now,
    }
    async with services.db.write() as conn:
        await request_rows.insert(conn, values)
        await state_machine.record_request_creation(
            conn,
            request_id,
            now=now,
            actor=principal.name,
            reason=f"accepted: {len(items)} run(s) of {name} {version}",
        )
    return {"request_id": request_id, "state": "new", "total_runs": len(items)}


async def get_visible(services: AppContext, request_id: str, principal: Principal) -> RequestSummary:
    """The request (without its spec), or NotFound if it does not exist or is not visible."""
    async with services.db.read() as conn:
        row = await request_rows.get(conn, request_id)
    if row is None or not principal.can_see(row.research_group):
        raise NotFound(f"request {request_id} not found")
    return row


async def list_page(
    services: AppContext,
    principal: Principal,
    flt: RequestFilter,
    page_size: int | None,
    page_token: str | None,
) -> tuple[list[RequestSummary], str]:
    """One page of visible requests, newest first, and the next page's token ('' at the end)."""
    groups = principal.visible_groups()
    if groups is not None:
        flt = RequestFilter(**{**flt.__dict__, "groups": groups})
    return await paging.newest_first(
        services, page_size, page_token, lambda conn, limit, after: request_rows.page(conn, flt, limit, after)
    )


async def detail(
    services: AppContext, request_id: str, principal: Principal, page_size: int | None, page_token: str | None
) -> dict[str, Any]:
    """The request, its aggregate state, and one page of its runs in request_index order."""
    row = await get_visible(services, request_id, principal)
    size = paging.page_size(page_size, services.settings.default_page_size, services.settings.max_page_size)
    after = paging.decode_position(page_token) - 1 if page_token else None
    async with services.db.read() as conn:
        counts = await request_rows.run_states(conn, request_id)
        runs = await request_rows.run_page(conn, request_id, after, size + 1)
    token = paging.encode_position(runs[size - 1].request_index + 1) if len(runs) > size else ""
    sample_key = _sample_key(services, row)
    return {
        **view(row),
        "aggregate": {
            "state": aggregate_state(row, counts).value,
            "runs_created": sum(counts.values()),
            "counts": counts,
        },
        "runs": [_run_view(run, sample_key) for run in runs[:size]],
        "next_page_token": token,
    }


def aggregate_state(request: RequestSummary, counts: Mapping[str, int]) -> State:
    """One WES state for the whole request (the rule is in this module's docstring)."""
    states = {State(s) for s, n in counts.items() if n}
    step_pending = request.step_state == "waiting" and states <= {State.COMPLETE}
    if request.state == "new" or states - TERMINAL or step_pending:
        if request.cancel_requested:
            return State.CANCELING
        return State.RUNNING if states - {State.QUEUED} else State.QUEUED
    for failure in (State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.PREEMPTED):
        if failure in states:
            return State.EXECUTOR_ERROR if failure is State.EXECUTOR_ERROR else State.SYSTEM_ERROR
    if State.CANCELED in states or request.cancel_requested:
        return State.CANCELED
    return State.SYSTEM_ERROR if request.state == "failed" else State.COMPLETE


async def state_of(services: AppContext, request_id: str, principal: Principal) -> dict[str, Any]:
    row = await get_visible(services, request_id, principal)
    return {"request_id": row.id, "state": row.state, "message": row.message}


async def cancel(services: AppContext, request_id: str, principal: Principal) -> Cancel[RequestSummary]:
    """Stop expansion and cancel every run of the request (idempotent). A request that has
    expanded and whose runs have all ended is left as it is, and the answer says so."""
    row = await get_visible(services, request_id, principal)
    if not row.cancel_requested:
        async with services.db.read() as conn:
            counts = await request_rows.run_states(conn, request_id)
        ended = aggregate_state(row, counts)
        if ended in TERMINAL:
            return Cancel(row, ended.value)
        now = utcnow()
        async with services.db.write() as conn:
            await request_rows.set_cancel_requested(conn, request_id, now)
            await state_machine.record_request_event(
                conn, request_id, "cancel", now=now, actor=principal.name, reason="cancel requested"
            )
    await cancel_runs(services, request_id, principal.name)
    return Cancel(await get_visible(services, request_id, principal))


async def cancel_runs(services: AppContext, request_id: str, actor: str) -> int:
    """Move every active run of the request to CANCELING; the worker carries the cancels out."""
    async with services.db.read() as conn:
        ids = await request_rows.active_run_ids(conn, request_id, _TERMINAL)
    moved = 0
    for start in range(0, len(ids), CANCEL_CHUNK):
        now = utcnow()
        async with services.db.write() as conn:
            for run in await run_rows.get_many(conn, ids[start : start + CANCEL_CHUNK]):
                current = run.state
                if current in TERMINAL or current is State.CANCELING:
                    continue
                moved += await state_machine.transition(
                    conn,
                    run.id,
                    current,
                    State.CANCELING,
                    now=now,
                    reason=f"request {request_id} canceled",
                    actor=actor,
                    fields={"next_check_at": now},
                )
    return moved


async def events(services: AppContext, request_id: str, principal: Principal) -> list[dict[str, Any]]:
    """The request's audit trail, oldest first."""
    await get_visible(services, request_id, principal)
    async with services.db.read() as conn:
        rows = await event_rows.for_request(conn, request_id)
    return [
        {
            "at": r["at"].isoformat(),
            "kind": r["kind"],
            "from_state": r["from_state"],
            "to_state": r["to_state"],
            "reason": r["reason"],
            "actor": r["actor"],
        }
        for r in rows
    ]


def view(row: RequestSummary) -> dict[str, Any]:
    """A request as the API shows it."""
    return {
        "request_id": row.id,
        "state": row.state,
        "message": row.message,
        "pipeline_name": row.pipeline_name,
        "pipeline_version": row.pipeline_version,
        "research_group": row.research_group,
        "owner": row.owner,
        "total_runs": row.total_runs,
        "cancel_requested": row.cancel_requested,
        "step_state": row.step_state,  # docs/adr/0019: null, waiting, created, skipped
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _run_view(run: RequestRun, sample_key: str | None) -> dict[str, Any]:
    params = run.workflow_params
    return {
        "run_id": run.id,
        "request_index": run.request_index,
        "state": run.state,
        "sample_id": params.get(sample_key) if sample_key else None,
        "dataset_id": run.dataset_id,
        "error_message": run.error_message,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
    }


def _sample_key(services: AppContext, row: RequestSummary) -> str | None:
    try:
        return services.catalog.get(row.pipeline_name or "", row.pipeline_version).sample_id_parameter
    except NotFound:
        return None
