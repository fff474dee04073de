"""The dispatch-now pool: no threads until used, drained (and bounded) on close."""

from __future__ import annotations

import asyncio
import threading
import time

from flowdeck.services.core.blocking import BlockingPool, TrackedPool


async def test_no_threads_until_first_use_and_none_after_close() -> None:
    pool = TrackedPool(2)
    before = {t.name for t in threading.enumerate()}
    await pool.aclose(1.0)  # closing an unused pool makes nothing
    assert not any(name.startswith("flowdeck-engine") for name in {t.name for t in threading.enumerate()} - before)


async def test_close_waits_for_a_running_call() -> None:
    pool = TrackedPool(2)
    done: list[str] = []

    async def work(threads: BlockingPool) -> None:
        done.append(await threads.run(lambda: (time.sleep(0.2), "ran")[1]))

    task = pool.start(work)
    await pool.aclose(5.0)
    assert task.done()
    assert not task.cancelled()
    assert done == ["ran"]


async def test_close_gives_up_after_its_wait_and_cancels() -> None:
    pool = TrackedPool(1)
    task = pool.start(lambda threads: asyncio.sleep(30))
    started = time.monotonic()
    await pool.aclose(0.1)
    await asyncio.sleep(0)
    assert task.cancelled()
    assert time.monotonic() - started < 5
