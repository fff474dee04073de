"""Run-state policy (flowdeck.domain.run_policy), table by table."""

from __future__ import annotations

import pytest

from flowdeck import errors
from flowdeck.domain import run_policy
from flowdeck.domain.run_policy import dispatch_failure_state
from flowdeck.domain.states import State
from flowdeck.services.auth.jwks import IdentityProviderUnavailable


@pytest.mark.parametrize(
    ("failure", "state"),
    [("executor", State.EXECUTOR_ERROR), ("system", State.SYSTEM_ERROR), ("retry", None)],
)
def test_dispatch_failure_state(failure: errors.RunFailure, state: State | None) -> None:
    assert dispatch_failure_state(failure) is state


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (errors.InvalidInput, State.EXECUTOR_ERROR),
        (errors.ValidationFailed, State.EXECUTOR_ERROR),
        (errors.Unauthenticated, State.EXECUTOR_ERROR),
        (errors.Forbidden, State.EXECUTOR_ERROR),
        (errors.NotFound, State.EXECUTOR_ERROR),
        (errors.Conflict, State.EXECUTOR_ERROR),
        (errors.PayloadTooLarge, State.EXECUTOR_ERROR),
        (errors.EngineError, State.EXECUTOR_ERROR),
        (errors.EngineUnavailable, None),
        (errors.FlowdeckError, State.SYSTEM_ERROR),
        (errors.DatabaseUnavailable, State.SYSTEM_ERROR),
        (errors.ConfigurationError, State.SYSTEM_ERROR),
        (IdentityProviderUnavailable, State.SYSTEM_ERROR),
    ],
)
def test_each_error_carries_the_state_a_dispatch_fails_into(
    error: type[errors.FlowdeckError], state: State | None
) -> None:
    assert dispatch_failure_state(error.run_failure) is state


S = State


@pytest.mark.parametrize(
    ("current", "reported", "target"),
    [
        # no report, or the same state: nothing to move
        (S.RUNNING, None, None),
        (S.RUNNING, S.RUNNING, None),
        (S.CANCELING, S.CANCELING, None),
        # the engine moves an ordinary run along the state machine
        (S.INITIALIZING, S.RUNNING, S.RUNNING),
        (S.RUNNING, S.COMPLETE, S.COMPLETE),
        (S.RUNNING, S.EXECUTOR_ERROR, S.EXECUTOR_ERROR),
        (S.RUNNING, S.SYSTEM_ERROR, S.SYSTEM_ERROR),
        (S.RUNNING, S.PAUSED, S.PAUSED),
        (S.PAUSED, S.RUNNING, S.RUNNING),
        # a move the state machine refuses is not taken
        (S.RUNNING, S.QUEUED, None),
        (S.COMPLETE, S.RUNNING, None),
        # CANCELING: an engine error means it stopped on request
        (S.CANCELING, S.EXECUTOR_ERROR, S.CANCELED),
        (S.CANCELING, S.SYSTEM_ERROR, S.CANCELED),
        # CANCELING: the engine still runs it, it is still stopping
        (S.CANCELING, S.RUNNING, None),
        (S.CANCELING, S.PAUSED, None),
        (S.CANCELING, S.INITIALIZING, None),
        (S.CANCELING, S.UNKNOWN, None),
        # CANCELING: the engine stopped it, or it finished first
        (S.CANCELING, S.CANCELED, S.CANCELED),
        (S.CANCELING, S.COMPLETE, S.COMPLETE),
    ],
)
def test_sync_target(current: State, reported: State | None, target: State | None) -> None:
    assert run_policy.sync_target(current, reported) is target


@pytest.mark.parametrize(
    ("current", "cancel_sent", "needed"),
    [
        (S.CANCELING, False, True),
        (S.CANCELING, True, False),
        (S.RUNNING, False, False),
        (S.CANCELED, False, False),
    ],
)
def test_needs_engine_cancel(current: State, cancel_sent: bool, needed: bool) -> None:
    assert run_policy.needs_engine_cancel(current, cancel_sent) is needed


@pytest.mark.parametrize(
    ("current", "wanted", "end"),
    [
        (S.INITIALIZING, S.EXECUTOR_ERROR, S.EXECUTOR_ERROR),
        (S.INITIALIZING, S.SYSTEM_ERROR, S.SYSTEM_ERROR),
        (S.CANCELING, S.EXECUTOR_ERROR, S.CANCELED),
        (S.CANCELING, S.SYSTEM_ERROR, S.CANCELED),
        (S.QUEUED, S.EXECUTOR_ERROR, S.SYSTEM_ERROR),
        (S.RUNNING, S.EXECUTOR_ERROR, None),
        (S.COMPLETE, S.SYSTEM_ERROR, None),
        (S.CANCELED, S.SYSTEM_ERROR, None),
    ],
)
def test_failed_dispatch_end(current: State, wanted: State, end: State | None) -> None:
    assert run_policy.failed_dispatch_end(current, wanted) is end


@pytest.mark.parametrize(
    ("current", "answer"),
    [
        (S.QUEUED, "cancel"),
        (S.INITIALIZING, "cancel"),
        (S.RUNNING, "cancel"),
        (S.PAUSED, "cancel"),
        (S.CANCELING, "under_way"),
        (S.COMPLETE, "ended"),
        (S.EXECUTOR_ERROR, "ended"),
        (S.SYSTEM_ERROR, "ended"),
        (S.CANCELED, "ended"),
    ],
)
def test_cancel_request(current: State, answer: str) -> None:
    assert run_policy.cancel_request(current) == answer


@pytest.mark.parametrize(
    ("age", "interval"),
    [(-5.0, 2.0), (0.0, 2.0), (20.0, 2.0), (50.0, 5.0), (300.0, 30.0), (10_000.0, 60.0)],
)
def test_poll_interval(age: float, interval: float) -> None:
    assert run_policy.poll_interval(age, 2.0, 60.0) == interval


@pytest.mark.parametrize(
    ("failures", "retry_after", "delay"),
    [
        (1, None, 4.0),
        (2, None, 8.0),
        (4, None, 32.0),
        (5, None, 60.0),  # capped
        (30, None, 60.0),
        (1, 10.0, 10.0),  # the engine's hint is a floor...
        (4, 10.0, 32.0),  # ...never a ceiling
        (5, 120.0, 120.0),  # and may exceed the cap
    ],
)
def test_check_backoff(failures: int, retry_after: float | None, delay: float) -> None:
    assert run_policy.check_backoff(failures, 2.0, 60.0, retry_after) == delay


@pytest.mark.parametrize(
    ("backend_failed", "failures", "broken"),
    [(True, 2, False), (True, 3, True), (True, 4, True), (False, 3, False), (False, 100, False)],
)
def test_is_broken(backend_failed: bool, failures: int, broken: bool) -> None:
    assert run_policy.is_broken(backend_failed, failures, 3) is broken


@pytest.mark.parametrize(("silent", "expired"), [(0.0, False), (59.9, False), (60.0, True), (3600.0, True)])
def test_watchdog_expired(silent: float, expired: bool) -> None:
    assert run_policy.watchdog_expired(silent, 60.0) is expired
