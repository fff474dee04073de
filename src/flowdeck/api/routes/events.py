"""GET /events: the audit trail as server-sent events (docs/events.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from flowdeck.api.access_log import SERVER_SEND_KEY
from flowdeck.api.deps import PrincipalDep
from flowdeck.errors import ValidationFailed
from flowdeck.services.events import stream as event_service
from flowdeck.services.events.stream import EventHub
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


class EventStreamResponse(Response):
    """A subscription as ``text/event-stream``, written by the hub through ASGI ``send`` until
    the client disconnects. Not Starlette's ``StreamingResponse``: the hub writes to an idle
    stream from its fan-out, with no generator between (services.events.subscription)."""

    media_type = "text/event-stream"

    def __init__(self, hub: EventHub, sub: Subscription) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._hub, self._sub = hub, sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The start goes through every middleware (status, access log, CORS); the body chunks go
        # to the server's send: at 1,000 streams the middleware wrappers' coroutines were ~6 % of
        # the API process and p99 92-130 -> 77-95 ms (bench/NOTES.md, "middleware"). None of them
        # acts on a body chunk with more_body (test_no_middleware_..._body_chunks guards the list).
        body = scope.get(SERVER_SEND_KEY, send)

        async def write(data: bytes) -> None:
            await body({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            serving = asyncio.ensure_future(self._hub.serve(self._sub, write))
            listening = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait((serving, listening), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (serving, listening):
                    task.cancel()
                await asyncio.gather(serving, listening, return_exceptions=True)
        finally:
            self._hub.unsubscribe(self._sub)
        if not serving.cancelled() and (error := serving.exception()) is not None:
            raise error  # the database lost during a catch-up: the server closes the stream


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
) -> EventStreamResponse:
    """Events the caller may see, as ``text/event-stream``: ``id`` is the event id (resume with
    ``Last-Event-ID``), ``event`` its type, ``data`` the event as JSON; a comment line
    (``: keep-alive``) after each quiet spell."""
    flt = event_service.make_filter(
        principal, run_id=run, request_id=request_id, pipeline=pipeline, research_group=group, event_type=event_type
    )
    hub: EventHub = request.app.state.event_hub
    sub = await hub.subscribe(flt, _resume_from(last_event_header, last_event_id))
    return EventStreamResponse(hub, sub)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
