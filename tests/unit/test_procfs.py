"""A quick engine's start time is read even when it has already exited (issue: start_ticks None)."""

from __future__ import annotations

import os
import time

from flowdeck.backends.local.procfs import child_start_ticks, start_ticks


def test_an_exited_unreaped_child_still_has_its_start_time() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while start_ticks(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child is a zombie
        assert start_ticks(pid) is None  # not alive: is_alive's view
        ticks = child_start_ticks(pid)
        assert ticks is not None
        assert ticks >= start_ticks(os.getpid())  # type: ignore[operator]
    finally:
        os.waitpid(pid, 0)
    assert child_start_ticks(pid) is None  # reaped: gone
