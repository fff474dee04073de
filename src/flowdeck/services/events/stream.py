"""The live event stream: one fan-out per API process (docs/events.md).

An :class:`EventHub` reads new events once per wake-up (a PostgreSQL NOTIFY sent by the
transaction that wrote them, an in-process new run, or a short poll) and hands them to every
open stream that asked for them and may see them: one shared batch per distinct filter
(services.events.subscription). A stream holds at most
``settings.events_queue_size`` events; one that falls behind is caught up from the database by
id, so a slow client costs no memory beyond its queue.

Event ids come from a sequence: on PostgreSQL a transaction can commit after a later id did.
The hub therefore keeps the ids it skipped over ("gaps") open for ``_GAP_SECONDS`` and reads
from below the oldest of them, delivering a late event when it commits (rolled back inserts leave
gaps forever; they are given up after that time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.db import events as event_rows
from flowdeck.domain.filters import EventFilter
from flowdeck.domain.principal import Principal
from flowdeck.errors import ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.events.subscription import BATCH, Batch, Event, Sink, Subscription

log = logging.getLogger(__name__)

_GAP_SECONDS = 10.0
# At most one fan-out per this long: every fan-out is one socket write per open stream, and at
# 1,000 streams those writes were half the API's time (bench/NOTES.md). A lone commit is not delayed.
_FANOUT_SPACING_SECONDS = 0.05
KINDS = ("state", "cancel", "input_staged", "call_cache")


async def listen_for_commits(
    services: AppContext, notified: Callable[[], None], lost: Callable[[], None] = lambda: None, *, what: str
) -> None:
    """Call ``notified`` once LISTEN is in place and after every commit that wrote events (on
    PostgreSQL: a run's creation, a cancel, every state change), on a connection of its own;
    ``lost`` when that connection drops, reconnecting a second later. Runs until cancelled."""
    while True:
        try:
            async for _ in event_rows.notifications(services.db.url):
                notified()
        except Exception:
            log.warning("%s: LISTEN connection lost; polling until it is back", what, exc_info=True)
        lost()
        await asyncio.sleep(1)


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while (the route sends a comment line)."""


def event_body(row: Mapping[Any, Any]) -> Event:
    """An event as a client sees it."""
    return Event(
        {
            "id": row["id"],
            "type": row["kind"],
            "at": row["at"].isoformat(),
            "run_id": row["run_id"],
            "request_id": row["owning_request_id"],
            "from_state": row["from_state"],
            "to_state": row["to_state"],
            "reason": row["reason"],
            "actor": row["actor"],
            "pipeline_name": row["pipeline_name"],
            "research_group": row["research_group"],
        }
    )


def make_filter(
    principal: Principal,
    *,
    run_id: str | None = None,
    request_id: str | None = None,
    pipeline: str | None = None,
    research_group: str | None = None,
    event_type: str | None = None,
) -> EventFilter:
    """The caller's filter, limited to the groups they may see (the list rule: visible_groups)."""
    if event_type is not None and event_type not in KINDS:
        raise ValidationFailed(f"type must be one of {', '.join(KINDS)}")
    for name, value in (("run", run_id), ("request", request_id), ("pipeline", pipeline), ("group", research_group)):
        if value is not None and (not value or "\x00" in value or len(value) > 128):
            raise ValidationFailed(f"{name} must be 1 to 128 characters without NUL")
    return EventFilter(run_id, request_id, pipeline, research_group, event_type, principal.visible_groups())


def _matches(flt: EventFilter, event: Event) -> bool:
    """The in-memory twin of db.events' conditions (the hub reads every event once)."""
    group = event["research_group"]
    return (
        (flt.run_id is None or event["run_id"] == flt.run_id)
        and (flt.request_id is None or event["request_id"] == flt.request_id)
        and (flt.pipeline_name is None or event["pipeline_name"] == flt.pipeline_name)
        and (flt.research_group is None or group == flt.research_group)
        and (flt.kind is None or event["type"] == flt.kind)
        and (flt.groups is None or group in flt.groups)
    )


class EventHub:
    """Reads new events once per wake-up and fans them out to this process's streams."""

    def __init__(self, services: AppContext) -> None:
        self._services = services
        self._subs: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self._listen_ready = asyncio.Event()
        self._floor = 0  # every id up to here was read
        self._seen: set[int] = set()  # ids above the floor already read
        self._gaps: dict[int, float] = {}  # ids above the floor not seen yet: when first missed
        self._joining = 0  # subscribers waiting for the hub to be ready
        # Every write this process commits (a submit, or the worker's state changes in `flowdeck up`).
        self._unsubscribe = services.db.on_commit(self.wake)

    def wake(self) -> None:
        """Something was committed in this process: read now instead of at the next poll."""
        task = self._task
        if task is None:
            return
        loop = task.get_loop()
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._wake.set()
        else:  # a commit made on another thread's loop
            loop.call_soon_threadsafe(self._wake.set)

    async def subscribe(self, flt: EventFilter, last_event_id: int | None) -> Subscription:
        """A new stream; with ``last_event_id`` it first reads what it missed from the database."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self._joining += 1
        try:
            await self._ready.wait()
        finally:
            self._joining -= 1
        settings = self._services.settings
        start = self._floor if last_event_id is None else last_event_id
        sub = Subscription(flt, start, settings.events_queue_size, lagging=last_event_id is not None)
        sub.start_heartbeat(settings.events_heartbeat_seconds)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """The stream has ended; the last one to go stops the hub (no polling for nobody)."""
        self._subs.discard(sub)
        sub.close()
        if not self._subs and not self._joining:
            self._stop()

    def _stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
        self._task = self._listener = None
        self._ready.clear()
        self._listen_ready.clear()
        self._wake.clear()
        self._listening = False
        self._seen.clear()
        self._gaps.clear()

    async def serve(self, sub: Subscription, sink: Sink) -> None:
        """Write the subscription to ``sink`` as server-sent events until cancelled: a comment
        line first (the client knows it is listening), then each batch as one write, its bytes
        made once for every stream it goes to, and ``: keep-alive`` after each quiet spell. Once
        the first line is out the hub writes to an idle stream itself (Subscription)."""
        await sink(b": stream open\n\n")
        sub.sink = sink
        async for item in self.stream(sub):
            await sink(b": keep-alive\n\n" if isinstance(item, Heartbeat) else item.frame())

    async def stream(self, sub: Subscription) -> AsyncIterator[Batch | Heartbeat]:
        """The subscription's events in the order read, in batches (whatever was offered while the
        stream was sending, so a busy stream sends fewer, larger writes), with a heartbeat after
        each quiet spell."""
        while True:
            await sub.wait()
            if sub.lagging:
                async for page in self._catch_up(sub):
                    sub.sent()
                    yield page
            elif sub.pending:
                if batch := sub.take():
                    sub.sent()
                    yield batch
            elif sub.heartbeat_due():
                sub.sent()
                yield Heartbeat()

    async def _catch_up(self, sub: Subscription) -> AsyncIterator[Batch]:
        """Drop the queue and read from the database after the last id sent, page by page;
        what the hub offers meanwhile queues up again (and is skipped if already sent)."""
        sub.drop_pending()
        sub.lagging = False
        while True:
            async with self._services.db.read() as conn:
                rows = await event_rows.after(conn, sub.after, BATCH, sub.flt)
            page = Batch(event_body(row) for row in rows)
            for event in page:
                sub.caught_up(event)
            if page:
                yield page
            if len(rows) < BATCH:
                return

    async def _run(self) -> None:
        db = self._services.db
        if db.is_postgres:
            self._listener = asyncio.create_task(self._listen())
            with contextlib.suppress(TimeoutError):  # if LISTEN cannot start, polling carries on
                async with asyncio.timeout(10):
                    await self._listen_ready.wait()
        async with db.read() as conn:
            self._floor = await event_rows.latest_id(conn)
        self._ready.set()
        last_read = 0.0
        while True:
            poll = self._services.settings.events_poll_seconds
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (aclose would hang)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll if not self._listening or self._gaps else 30):
                    await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(max(0.0, last_read + _FANOUT_SPACING_SECONDS - time.monotonic()))
            last_read = time.monotonic()
            try:
                await self._read_new()
            except Exception:  # the database away: the next wake-up or poll tries again
                log.warning("event stream: reading new events failed", exc_info=True)

    async def _listen(self) -> None:
        """Set the wake-up on every NOTIFY; reconnect (and read once) when the connection drops."""

        def notified() -> None:
            self._listening = True
            self._listen_ready.set()
            self._wake.set()

        def lost() -> None:
            self._listening = False

        await listen_for_commits(self._services, notified, lost, what="event stream")

    async def _read_new(self) -> None:
        cursor = self._floor  # below it only gaps are read again; above it, page by page
        while True:
            async with self._services.db.read() as conn:
                rows = await event_rows.after(conn, cursor, BATCH)
            cursor = rows[-1]["id"] if rows else cursor
            fresh = [event_body(row) for row in rows if row["id"] not in self._seen]
            self._seen.update(event["id"] for event in fresh)
            self._fan_out(fresh)
            self._advance_floor()
            if len(rows) < BATCH:
                return

    def _fan_out(self, events: list[Event]) -> None:
        """Hand each stream the events it may see: the filter is applied once per distinct filter
        (streams of one caller with one query share it), each stream is offered one list."""
        if not events:
            return
        matched: dict[EventFilter, Batch] = {}
        for sub in list(self._subs):
            mine = matched.get(sub.flt)
            if mine is None:
                mine = matched[sub.flt] = Batch(event for event in events if _matches(sub.flt, event))
            if mine:
                sub.offer(mine)

    def _advance_floor(self) -> None:
        top = max(self._seen, default=self._floor)
        now = time.monotonic()
        for ident in range(self._floor + 1, top):
            if ident not in self._seen:
                self._gaps.setdefault(ident, now)
        self._gaps = {i: t for i, t in self._gaps.items() if i not in self._seen and now - t < _GAP_SECONDS}
        self._floor = min(self._gaps) - 1 if self._gaps else top
        self._seen = {i for i in self._seen if i > self._floor}

    async def aclose(self) -> None:
        self._unsubscribe()
        tasks = [task for task in (self._listener, self._task) if task is not None]
        self._stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
