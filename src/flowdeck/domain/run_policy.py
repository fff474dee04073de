"""Run-state policy: which state a run goes to when something goes wrong, decided once.

Pure functions over domain values, so each rule is read (and tested) as a table.
"""

from __future__ import annotations

from flowdeck.domain.states import State
from flowdeck.errors import RunFailure

_DISPATCH_FAILURE: dict[RunFailure, State | None] = {
    "executor": State.EXECUTOR_ERROR,  # the input or the engine refused the run
    "system": State.SYSTEM_ERROR,  # flowdeck's own trouble
    "retry": None,  # the engine was not reached: the run stays queued and is tried again
}


def dispatch_failure_state(failure: RunFailure) -> State | None:
    """The state a run whose dispatch failed with ``failure`` ends in; None: dispatch it again later."""
    return _DISPATCH_FAILURE[failure]
