"""Run-state policy (flowdeck.domain.run_policy), table by table."""

from __future__ import annotations

import pytest

from flowdeck import errors
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
