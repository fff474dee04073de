"""GET /events: the audit trail as server-sent events (docs/events.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from flowdeck.api.deps import PrincipalDep
from flowdeck.errors import ValidationFailed
from flowdeck.services.events import stream as event_service
from flowdeck.services.events.stream import EventHub, Heartbeat
from flowdeck.services.events.subscription import Subscription

router = APIRouter(tags=["events"])


def _resume_from(header: str | None, query: int | None) -> int | None:
    if header is None:
        return query
    try:
        value = int(header)
    except ValueError:
        raise ValidationFailed("Last-Event-ID must be an event id (a whole number)") from None
    if value < 0:
        raise ValidationFailed("Last-Event-ID must not be negative")
    return value


@router.get("/events")
async def events(
    request: Request,
    principal: PrincipalDep,
    run: Annotated[str | None, Query(description="Only this run's events.")] = None,
    request_id: Annotated[
        str | None, Query(alias="request", description="Only this request's (and its runs').")
    ] = None,
    pipeline: Annotated[str | None, Query(description="Only runs and requests of this pipeline.")] = None,
    group: Annotated[str | None, Query(description="Only this research group's.")] = None,
    event_type: Annotated[
        str | None, Query(alias="type", description="Only events of this type (state, cancel).")
    ] = None,
    last_event_id: Annotated[int | None, Query(ge=0, description="Resume after this id (as Last-Event-ID).")] = None,
    last_event_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Events the caller may see, as ``text/event-stream``: ``id`` is the event id (resume with
    ``Last-Event-ID``), ``event`` its type, ``data`` the event as JSON; a comment line
    (``: keep-alive``) after each quiet spell."""
    flt = event_service.make_filter(
        principal, run_id=run, request_id=request_id, pipeline=pipeline, research_group=group, event_type=event_type
    )
    hub: EventHub = request.app.state.event_hub
    sub = await hub.subscribe(flt, _resume_from(last_event_header, last_event_id))
    return StreamingResponse(
        _sse(hub, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _sse(hub: EventHub, sub: Subscription) -> AsyncIterator[bytes]:
    try:
        yield b": stream open\n\n"  # headers and a first byte now: the client knows it is listening
        async for item in hub.stream(sub):
            if isinstance(item, Heartbeat):
                yield b": keep-alive\n\n"
            else:  # one write for the batch, its bytes made once for every stream it went to
                yield item.frame()
    finally:
        hub.unsubscribe(sub)
