"""What one open stream holds: the events it was offered and not yet sent, in the hub's shared
batches, and when its next heartbeat is due (services.events.stream fans out to these)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from flowdeck.domain.filters import EventFilter

BATCH = 500  # events read or sent at most at once

Sink = Callable[[bytes], Coroutine[Any, Any, None]]
"""Writes bytes to the stream's client (the route's ASGI ``send`` of a body chunk)."""


class Event(dict[str, Any]):
    """An event as a client sees it; :meth:`json` is its JSON text and :meth:`frame` its
    server-sent-events frame, each made once however many streams send it (at 1,000 streams,
    encoding it per stream was most of the fan-out's cost)."""

    __slots__ = ("_frame", "_json")
    _json: str
    _frame: bytes

    def json(self) -> str:
        try:
            return self._json
        except AttributeError:
            self._json = json.dumps(self)
            return self._json

    def frame(self) -> bytes:
        """``id``, ``event`` and ``data`` lines and the blank line that ends them, as bytes."""
        try:
            return self._frame
        except AttributeError:
            self._frame = f"id: {self['id']}\nevent: {self['type']}\ndata: {self.json()}\n\n".encode()
            return self._frame


class Batch(list[Event]):
    """Events sent in one write. The hub makes one per fan-out and filter and hands the same
    object to every stream with that filter, so :meth:`frame` (their frames joined) and
    :attr:`top` (the highest id) are made once, not once per stream."""

    __slots__ = ("_frame", "_top")
    _frame: bytes
    _top: int

    def frame(self) -> bytes:
        try:
            return self._frame
        except AttributeError:
            self._frame = b"".join(event.frame() for event in self)
            return self._frame

    @property
    def top(self) -> int:
        try:
            return self._top
        except AttributeError:
            self._top = max((int(event["id"]) for event in self), default=0)
            return self._top


class _Rest:
    """The rest of a write that could not finish at once (the client's socket buffer was full,
    so the server's ``send`` waits to drain): awaiting this drives the started coroutine on in
    the awaiting task, exactly as ``await`` would have (``yield from``'s protocol, by hand)."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro, self._waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancel while waiting goes to the write, as with await
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


async def _raise(error: BaseException) -> None:
    """A write made by the hub that raised: the stream's own task raises it."""
    raise error


@dataclass(eq=False)
class Subscription:
    """One open stream: its filter, the events offered and not yet sent (at most ``limit``),
    and where it stands.

    The hub hands a stream a fan-out's matching events in one call and wakes it once; a timer
    re-armed once per heartbeat interval (not per event) marks a quiet spell. At 1,000 streams a
    queue put per event and a timeout per wait were a third of the fan-out (bench/NOTES.md).

    A stream with a :attr:`sink` (the route's ``send``) whose task is idle in :meth:`wait` is
    written to by the hub itself, in the fan-out: no task wake-up, no generator, no queue. That
    was most of what a fan-out cost per stream at 1,000 streams (bench/NOTES.md, "direct
    writes"). A write that cannot finish at once (a slow client) is handed to the stream's task,
    which finishes it in :meth:`wait` before anything else; until then the hub queues, so the
    order of the bytes is the order of the offers either way."""

    flt: EventFilter
    after: int
    limit: int
    lagging: bool = False
    sink: Sink | None = None
    _pending: deque[Batch] = field(default_factory=deque)
    _held: int = 0  # events in _pending
    _waiter: asyncio.Future[None] | None = None
    _unfinished: Awaitable[None] | None = None  # a direct write the stream's task must finish
    _beat_due: bool = False
    _timer: asyncio.TimerHandle | None = None
    _sent_at: float = 0.0
    # Ids sent by a catch-up from the database, which the live queue may carry again. Live events
    # are offered once each by the hub, so they are not remembered: a stream keeping up holds none.
    _caught_up: deque[int] = field(default_factory=deque)
    _caught_up_set: set[int] = field(default_factory=set)

    @property
    def pending(self) -> int:
        """How many offered events wait to be sent."""
        return self._held

    def offer(self, batch: Batch) -> None:
        """Events (in id order) this stream asked for and may see: written at once when the
        stream is idle and has a sink, else queued. The slow-client rule: one that would hold
        more than ``limit`` drops them all and is caught up from the database."""
        if self.lagging:
            return
        waiter = self._waiter
        if self.sink is not None and waiter is not None and not waiter.done() and not self._pending:
            self._write_now(batch)
            return
        if self._held + len(batch) > self.limit:
            self.lagging = True  # the stream drops its queue and reads the database from `after`
            self.drop_pending()
        else:
            self._pending.append(batch)
            self._held += len(batch)
        self._wake()

    def _write_now(self, batch: Batch) -> None:
        assert self.sink is not None
        batch = self._unsent(batch)
        if not batch:
            return
        self.after = max(self.after, batch.top)
        self.sent()
        coro = self.sink(batch.frame())
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # the client is gone, or the server refused: its task ends
            self._unfinished = _raise(exc)
        else:
            self._unfinished = _Rest(coro, waiting)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        """Until there is something to do: events to send, a catch-up, or a heartbeat. A write
        the hub started and could not finish is finished here first (or its error raised)."""
        while True:
            if self._unfinished is not None:
                unfinished, self._unfinished = self._unfinished, None
                await unfinished
                continue
            if self._pending or self.lagging or self._beat_due:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take(self) -> Batch:
        """What was offered (whole fan-outs, up to about ``BATCH`` events), less any event a
        catch-up already sent; a stream that keeps up gets the hub's shared batch itself."""
        batch = self._pending.popleft()
        if self._pending and len(batch) < BATCH:
            batch = Batch(batch)
            while self._pending and len(batch) < BATCH:
                batch.extend(self._pending.popleft())
        self._held = sum(len(waiting) for waiting in self._pending)
        batch = self._unsent(batch)
        self.after = max(self.after, batch.top)
        return batch

    def _unsent(self, batch: Batch) -> Batch:
        if self._caught_up_set:
            return Batch(event for event in batch if int(event["id"]) not in self._caught_up_set)
        return batch

    def drop_pending(self) -> None:
        self._pending.clear()
        self._held = 0

    def caught_up(self, event: Event) -> None:
        """An event read from the database is being sent."""
        ident = int(event["id"])
        self._caught_up.append(ident)
        self._caught_up_set.add(ident)
        if len(self._caught_up) > 2 * self.limit + BATCH:
            self._caught_up_set.discard(self._caught_up.popleft())
        self.after = max(self.after, ident)

    def start_heartbeat(self, seconds: float) -> None:
        """Mark a heartbeat due after every ``seconds`` without a send (until :meth:`close`)."""
        loop = asyncio.get_running_loop()
        self._sent_at = loop.time()

        def tick() -> None:
            now = loop.time()
            if now - self._sent_at >= seconds:
                self._beat_due, self._sent_at = True, now
                self._wake()
            self._timer = loop.call_at(self._sent_at + seconds, tick)

        self._timer = loop.call_at(self._sent_at + seconds, tick)

    def sent(self) -> None:
        """Something went out: the quiet spell starts again."""
        self._beat_due = False
        self._sent_at = asyncio.get_running_loop().time()

    def heartbeat_due(self) -> bool:
        return self._beat_due

    def close(self) -> None:
        self.sink = None
        if self._timer is not None:
            self._timer.cancel()
        self._wake()
