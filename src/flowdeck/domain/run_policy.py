"""Run-state policy: which state a run goes to, and when it is looked at again, decided once.

Pure functions over domain values, so each rule is read (and tested) as a table.
"""

from __future__ import annotations

from typing import Literal

from flowdeck.domain.states import State, can_transition, is_terminal
from flowdeck.errors import RunFailure

_DISPATCH_FAILURE: dict[RunFailure, State | None] = {
    "executor": State.EXECUTOR_ERROR,  # the input or the engine refused the run
    "system": State.SYSTEM_ERROR,  # flowdeck's own trouble
    "retry": None,  # the engine was not reached: the run stays queued and is tried again
}


def dispatch_failure_state(failure: RunFailure) -> State | None:
    """The state a run whose dispatch failed with ``failure`` ends in; None: dispatch it again later."""
    return _DISPATCH_FAILURE[failure]


# While a run is CANCELING, an engine report of these means "still stopping": nothing to write yet.
_STILL_STOPPING = frozenset({State.RUNNING, State.PAUSED, State.INITIALIZING, State.UNKNOWN})
# ...and an engine error means the engine stopped because flowdeck asked it to.
_STOPPED_BY_REQUEST = frozenset({State.EXECUTOR_ERROR, State.SYSTEM_ERROR})


def sync_target(current: State, reported: State | None) -> State | None:
    """The state an engine's report moves a run to; None: the state stays as it is.

    A CANCELING run ends CANCELED when its engine reports an error (it stopped on request) and
    stays CANCELING while the engine still runs it; otherwise the report is taken when the
    state machine allows the move."""
    if reported is None or reported is current:
        return None
    if current is State.CANCELING and reported in _STOPPED_BY_REQUEST:
        return State.CANCELED
    if current is State.CANCELING and reported in _STILL_STOPPING:
        return None
    return reported if can_transition(current, reported) else None


def needs_engine_cancel(current: State, cancel_sent: bool) -> bool:
    """True when the engine must be asked to stop the run: it is CANCELING and was not asked yet."""
    return current is State.CANCELING and not cancel_sent


def failed_dispatch_end(current: State, wanted: State) -> State | None:
    """The state a run whose dispatch failed (wanting ``wanted``) ends in, given its state now.

    A run canceled meanwhile ends CANCELED; a run that is back in QUEUED (its dispatch was never
    recorded) ends SYSTEM_ERROR; a run that moved on is someone else's (None)."""
    if current is State.CANCELING:
        return State.CANCELED
    if current is State.QUEUED:
        return State.SYSTEM_ERROR
    if current is State.INITIALIZING:
        return wanted
    return None


def poll_interval(age_seconds: float, min_seconds: float, max_seconds: float) -> float:
    """Seconds until a run is checked again: a tenth of its age, within bounds (young runs often)."""
    return min(max_seconds, max(min_seconds, max(0.0, age_seconds) / 10))


def check_backoff(failures: int, min_seconds: float, max_seconds: float, retry_after: float | None) -> float:
    """Seconds until a run whose check failed ``failures`` times in a row is checked again.

    Doubles per failure up to ``max_seconds``; the engine's ``retry_after`` hint is a floor, so a
    run failing again and again still backs off further."""
    return max(retry_after or 0.0, min(max_seconds, min_seconds * 2.0**failures))


def is_broken(backend_failed: bool, failures: int, max_failed_checks: int) -> bool:
    """True when a run is to end SYSTEM_ERROR: its backend (not an engine being away) failed on it
    ``max_failed_checks`` times in a row."""
    return backend_failed and failures >= max_failed_checks


def watchdog_expired(silent_seconds: float, limit_seconds: float) -> bool:
    """True when a run's engine has said nothing new for ``limit_seconds``: the run ends SYSTEM_ERROR."""
    return silent_seconds >= limit_seconds


CancelAnswer = Literal["ended", "under_way", "cancel"]


def cancel_request(current: State) -> CancelAnswer:
    """What a cancel request does to a run in ``current``: nothing to a run that ended, nothing new
    to a run being canceled (a second cancel is idempotent), else the run moves to CANCELING."""
    if is_terminal(current):
        return "ended"
    if current is State.CANCELING:
        return "under_way"
    return "cancel"
