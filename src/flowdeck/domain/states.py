"""The WES run state set and the one transition table.

Terminal states never change: a rerun is a new run. The jobs API shows a
simpler view (seed 000's words) mapped in :func:`simple_state`, and seed 002's
status words in :func:`seed_status`.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """WES 1.1.0 ``State``."""

    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"


TERMINAL: frozenset[State] = frozenset(
    {State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED, State.PREEMPTED}
)
ACTIVE: frozenset[State] = frozenset(State) - TERMINAL
# States in which the engine holds the run and the worker must ask it for news.
ENGINE_HELD: frozenset[State] = frozenset(
    {State.INITIALIZING, State.RUNNING, State.PAUSED, State.UNKNOWN, State.CANCELING}
)

_ENDINGS = frozenset({State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.PREEMPTED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.INITIALIZING, State.CANCELING, State.SYSTEM_ERROR}),
    State.INITIALIZING: frozenset(
        {State.QUEUED, State.RUNNING, State.PAUSED, State.UNKNOWN, State.CANCELING} | _ENDINGS
    ),
    State.RUNNING: frozenset({State.PAUSED, State.UNKNOWN, State.CANCELING} | _ENDINGS),
    State.PAUSED: frozenset({State.RUNNING, State.UNKNOWN, State.CANCELING} | _ENDINGS),
    State.UNKNOWN: frozenset({State.RUNNING, State.PAUSED, State.CANCELING} | _ENDINGS),
    # A run may still finish on its own before the engine honours the cancel.
    State.CANCELING: frozenset({State.CANCELED} | _ENDINGS),
    State.COMPLETE: frozenset(),
    State.EXECUTOR_ERROR: frozenset(),
    State.SYSTEM_ERROR: frozenset(),
    State.CANCELED: frozenset(),
    State.PREEMPTED: frozenset(),
}


def is_terminal(state: State) -> bool:
    """True when the state can never change again."""
    return state in TERMINAL


def can_transition(current: State, target: State) -> bool:
    """True when the table allows ``current`` → ``target``."""
    return target in TRANSITIONS[current]


def simple_state(state: State) -> str:
    """Seed 000's view: queued, in_progress, completed, failed, canceled."""
    return _SIMPLE[state]


def seed_status(state: State) -> str:
    """Seed 002's view: PENDING, RUNNING, COMPLETED, FAILED, CANCELED."""
    return _SEED_STATUS[_SIMPLE[state]]


_SIMPLE: dict[State, str] = {
    State.QUEUED: "queued",
    State.INITIALIZING: "queued",
    State.RUNNING: "in_progress",
    State.PAUSED: "in_progress",
    State.UNKNOWN: "in_progress",
    State.CANCELING: "in_progress",
    State.COMPLETE: "completed",
    State.EXECUTOR_ERROR: "failed",
    State.SYSTEM_ERROR: "failed",
    State.PREEMPTED: "failed",
    State.CANCELED: "canceled",
}

_SEED_STATUS = {
    "queued": "PENDING",
    "in_progress": "RUNNING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}

SIMPLE_STATES: dict[str, frozenset[State]] = {
    word: frozenset(s for s, w in _SIMPLE.items() if w == word) for word in set(_SIMPLE.values())
}
