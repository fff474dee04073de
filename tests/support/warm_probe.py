"""A warm-start engine module for tests: reports what its forked run sees."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

STATE = {"preloaded": 0, "runs": 0}


def preload() -> None:
    """Count the preload and cache the server's temp dir, as a real engine's import might."""
    STATE["preloaded"] += 1
    tempfile.gettempdir()


def run(argv: list[str]) -> int:
    """``probe [sleep SECONDS | exit CODE | child]``: print what the run sees, then act."""
    STATE["runs"] += 1
    print(
        json.dumps(
            {
                "argv": argv,
                "state": STATE,
                "marker": os.environ.get("PROBE_MARKER"),
                "flowdeck_vars": sorted(name for name in os.environ if name.startswith("FLOWDECK")),
                "tmp": tempfile.gettempdir(),
                "cwd": os.getcwd(),
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "sid": os.getsid(0),
                "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
                "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
            }
        ),
        flush=True,
    )
    action = argv[1:3]
    if action[:1] == ["sleep"]:
        time.sleep(float(action[1]))
    elif action[:1] == ["exit"]:
        return int(action[1])
    elif action[:1] == ["child"]:
        # A detached grandchild: the launcher (child subreaper) must still sweep it at the end.
        if os.fork() == 0:
            os.setsid()
            time.sleep(300)
            os._exit(0)
        sys.stderr.write("left a child behind\n")
    return 0
