"""flowdeck's exception tree. The API maps it to HTTP in one place.

FlowdeckError                 500 unless a subclass says otherwise
├── InvalidInput              400 malformed request
│   └── ValidationFailed      422 well-formed but breaks the rules (carries every problem)
├── Unauthenticated           401
├── Forbidden                 403 (only where existence is already known to the caller)
├── NotFound                  404 (also what another group's object looks like)
├── Conflict                  409 (state does not allow it, idempotency key reused, in use)
├── PayloadTooLarge           413
├── EngineError               502 the engine refused or failed
│   └── EngineUnavailable     503 the engine could not be reached (transient)
├── DatabaseUnavailable       503 the database could not be reached or did not answer in time (transient)
└── ConfigurationError        raised at start-up: a setting or catalog file is wrong
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

# What a run fails into when this error stops its dispatch (mapped to a state by
# flowdeck.domain.run_policy): the caller's input or the engine's refusal is the run's fault
# ("executor"), flowdeck's own trouble is not ("system"), and an unreachable engine is tried again.
RunFailure = Literal["executor", "system", "retry"]


@dataclass(frozen=True)
class Problem:
    """One rule a value broke, located by a JSON pointer."""

    pointer: str
    message: str
    rule: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message, "rule": self.rule}


class FlowdeckError(Exception):
    """Base of every error flowdeck raises on purpose."""

    status_code = 500
    title = "Internal error"
    run_failure: ClassVar[RunFailure] = "system"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(FlowdeckError):
    status_code = 400
    title = "Bad request"
    run_failure: ClassVar[RunFailure] = "executor"


class ValidationFailed(InvalidInput):
    status_code = 422
    title = "Validation failed"

    def __init__(self, detail: str, problems: list[Problem] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.problems = problems or []


class Unauthenticated(FlowdeckError):
    status_code = 401
    title = "Unauthenticated"
    run_failure: ClassVar[RunFailure] = "executor"


class Forbidden(FlowdeckError):
    status_code = 403
    title = "Forbidden"
    run_failure: ClassVar[RunFailure] = "executor"


class NotFound(FlowdeckError):
    status_code = 404
    title = "Not found"
    run_failure: ClassVar[RunFailure] = "executor"


class Conflict(FlowdeckError):
    status_code = 409
    title = "Conflict"
    run_failure: ClassVar[RunFailure] = "executor"


class PayloadTooLarge(FlowdeckError):
    status_code = 413
    title = "Payload too large"
    run_failure: ClassVar[RunFailure] = "executor"


class EngineError(FlowdeckError):
    status_code = 502
    title = "Engine error"
    run_failure: ClassVar[RunFailure] = "executor"


class EngineUnavailable(EngineError):
    status_code = 503
    title = "Engine unavailable"
    run_failure: ClassVar[RunFailure] = "retry"


class DatabaseUnavailable(FlowdeckError):
    """The database refused the connection, dropped it, or did not answer within its timeouts
    (raised in one place: flowdeck.db.engine). Transient: answered 503 with Retry-After."""

    status_code = 503
    title = "Database unavailable"
    run_failure: ClassVar[RunFailure] = "system"
    retry_after_seconds = 5


class ConfigurationError(FlowdeckError):
    title = "Configuration error"
