"""Group commit: writes that arrive while another is being prepared share one transaction.

A commit costs the same for one row as for sixteen (SQLite writes its WAL pages once and
SQLAlchemy's transaction machinery runs once), so under load the cost a submission pays for
being durable is shared by every submission that arrived in the same turn of the event loop.
Nobody waits for a batch to fill: the first submitter starts a flush, the flush lets the loop
take one turn (requests already read from their sockets reach :meth:`GroupCommit.submit`), and
then writes whatever is waiting. Each caller returns only after its own item is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Commits items through ``write`` (one transaction per call), several at a time.

    ``isolate`` says which errors may belong to one item of a batch (a constraint one row
    breaks): a batch failing with one is written again item by item, so each caller gets its
    own outcome. Any other error (the database is unreachable or locked) fails the whole batch.
    """

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[None]], isolate: tuple[type[Exception], ...] = ()
    ) -> None:
        self._write = write
        self._isolate = isolate
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Return once ``item`` is committed; raise what writing it raised.

        A caller cancelled while waiting does not withdraw its item: it is written anyway (as a
        request whose client went away after sending it would have been).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self._flusher is not None and self._flusher.get_loop() is not loop:
            # Left by an event loop that ended (tests run several in a row): nothing of it is ours.
            self._waiting, self._flusher = [], None
        self._waiting.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while True:
                await asyncio.sleep(0)  # one turn: let the requests already read join this batch
                batch, self._waiting = self._waiting, []
                if not batch:
                    return
                await self._commit(batch)
        except BaseException as exc:  # the flush itself was cancelled (the loop is ending)
            for _, done in batch + self._waiting:
                _settle(done, exc if isinstance(exc, Exception) else asyncio.CancelledError())
            self._waiting = []
            raise

    async def _commit(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except self._isolate as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for entry in batch:
                await self._commit([entry])
            return
        except Exception as exc:
            for _, done in batch:
                _settle(done, exc)
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its caller was cancelled
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
