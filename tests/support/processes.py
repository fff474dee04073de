"""Stopping a flowdeck process a test or benchmark started."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGINT (flowdeck's graceful stop, as Ctrl-C), then SIGKILL if it has not ended in ``timeout``."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
