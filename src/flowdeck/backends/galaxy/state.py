"""Galaxy's invocation and job states mapped onto the WES state set, in one place.

An invocation's own state says how far Galaxy got *scheduling* it; whether the
work is done is in its jobs. So a run's state is decided from both:

===========================================  ===============
invocation / jobs                            run state
===========================================  ===============
``cancelled``, no job still active           CANCELED
``cancelling``, or cancelled with jobs left  CANCELING
``failed``                                   EXECUTOR_ERROR
some job error/failed/paused/deleted/        EXECUTOR_ERROR
stopped, and no job still active
``scheduled``/``completed``, every step      COMPLETE
scheduled, every job ok/skipped
``new``/``requires_materialization``,        INITIALIZING
no job yet
anything else                                RUNNING
===========================================  ===============

A ``paused`` job waits on an input that failed upstream and never runs, so it
counts as a failure. Pure functions: no BioBlend, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from flowdeck.domain.states import State

ACTIVE_JOB_STATES = frozenset({"new", "resubmitted", "upload", "waiting", "queued", "running", "deleting"})
GOOD_JOB_STATES = frozenset({"ok", "skipped"})
FAILED_JOB_STATES = frozenset({"error", "failed", "paused", "deleted", "deleted_new", "stop", "stopped"})
WAITING_INVOCATION_STATES = frozenset({"new", "requires_materialization"})
SCHEDULED_INVOCATION_STATES = frozenset({"scheduled", "completed"})

_TASK_STATES: dict[str, State] = {
    "new": State.QUEUED,
    "resubmitted": State.QUEUED,
    "upload": State.QUEUED,
    "waiting": State.QUEUED,
    "queued": State.QUEUED,
    "running": State.RUNNING,
    "ok": State.COMPLETE,
    "skipped": State.COMPLETE,
    "error": State.EXECUTOR_ERROR,
    "failed": State.EXECUTOR_ERROR,
    "paused": State.PAUSED,
    "deleting": State.CANCELING,
    "deleted": State.CANCELED,
    "deleted_new": State.CANCELED,
    "stop": State.CANCELING,
    "stopped": State.CANCELED,
}


@dataclass(frozen=True)
class RunVerdict:
    """A run's state as Galaxy reports it, with the reason when it failed."""

    state: State
    reason: str | None = None


def run_state(
    invocation_state: str,
    job_states: Mapping[str, int],
    all_steps_scheduled: bool = True,
) -> RunVerdict:
    """The run's state from the invocation's state and its jobs' state counts
    (subworkflow jobs included, as Galaxy's invocation job summary gives them)."""
    present = {state for state, count in job_states.items() if count}
    active = present & ACTIVE_JOB_STATES
    if invocation_state == "cancelled":
        # cancelled only once its jobs have stopped too
        return RunVerdict(State.CANCELING) if active else RunVerdict(State.CANCELED, "cancelled in Galaxy")
    if invocation_state == "cancelling":
        return RunVerdict(State.CANCELING)
    if invocation_state == "failed":
        return RunVerdict(State.EXECUTOR_ERROR, "Galaxy failed to schedule the workflow invocation")
    failed = present & FAILED_JOB_STATES
    if failed and not active:
        return RunVerdict(State.EXECUTOR_ERROR, f"Galaxy jobs ended {', '.join(sorted(failed))}")
    done_scheduling = invocation_state in SCHEDULED_INVOCATION_STATES and all_steps_scheduled
    if done_scheduling and not active and present <= GOOD_JOB_STATES:
        return RunVerdict(State.COMPLETE)
    if invocation_state in WAITING_INVOCATION_STATES and not present:
        return RunVerdict(State.INITIALIZING)
    return RunVerdict(State.RUNNING)


def fingerprint(invocation_state: str | None, populated_state: str | None, job_states: Mapping[str, int]) -> str:
    """A compact string that changes whenever anything the run's state depends on changes."""
    jobs = ",".join(f"{state}={count}" for state, count in sorted(job_states.items()) if count)
    return f"{invocation_state or '-'}|{populated_state or '-'}|{jobs}"


def task_state(job_state: str) -> State:
    """A Galaxy job state as a WES task state."""
    return _TASK_STATES.get(job_state, State.UNKNOWN)


def parse_time(value: object) -> datetime | None:
    """Galaxy's naive UTC timestamps as aware datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
