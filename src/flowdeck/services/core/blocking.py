"""Running blocking backend calls off the event loop, with a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingPool:
    """A thread pool sized for engine calls (the loop's default pool is tiny)."""

    def __init__(self, size: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="flowdeck-engine")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class TrackedPool:
    """A :class:`BlockingPool` made on first use, with the tasks started on it kept until they end
    (so the loop does not collect them) and drained by :meth:`aclose`."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pool: BlockingPool | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self, work: Callable[[BlockingPool], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``work(pool)`` as a task held until it ends."""
        if self._pool is None:
            self._pool = BlockingPool(self._size)
        task = asyncio.ensure_future(work(self._pool))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def aclose(self, wait_seconds: float) -> None:
        """Wait up to ``wait_seconds`` for the running tasks, cancel the rest, stop the threads."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=wait_seconds)
        for task in list(self._pending):
            task.cancel()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
