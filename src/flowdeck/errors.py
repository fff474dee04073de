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
from typing import Any


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

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(FlowdeckError):
    status_code = 400
    title = "Bad request"


class ValidationFailed(InvalidInput):
    status_code = 422
    title = "Validation failed"

    def __init__(self, detail: str, problems: list[Problem] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.problems = problems or []


class Unauthenticated(FlowdeckError):
    status_code = 401
    title = "Unauthenticated"


class Forbidden(FlowdeckError):
    status_code = 403
    title = "Forbidden"


class NotFound(FlowdeckError):
    status_code = 404
    title = "Not found"


class Conflict(FlowdeckError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(FlowdeckError):
    status_code = 413
    title = "Payload too large"


class EngineError(FlowdeckError):
    status_code = 502
    title = "Engine error"


class EngineUnavailable(EngineError):
    status_code = 503
    title = "Engine unavailable"


class DatabaseUnavailable(FlowdeckError):
    """The database refused the connection, dropped it, or did not answer within its timeouts
    (raised in one place: flowdeck.db.engine). Transient: answered 503 with Retry-After."""

    status_code = 503
    title = "Database unavailable"
    retry_after_seconds = 5


class ConfigurationError(FlowdeckError):
    title = "Configuration error"
