"""The interface every backend implements.

Backends take values and return values; they never touch the database. Every
method may block (engine calls, subprocesses): the worker calls them in threads,
never inside a database transaction. A failing workflow is a :class:`SyncReport`
with an error state, not an exception. An engine that cannot be reached raises
:class:`~flowdeck.errors.EngineUnavailable` (transient: retried), an engine that
refuses a run raises :class:`~flowdeck.errors.EngineError` (the run fails).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from flowdeck.domain.runs import CancelResult, RunHandle, RunSpec, Submitted, SyncReport

if TYPE_CHECKING:
    from flowdeck.settings import Settings


class Backend(ABC):
    """One execution engine.

    Capability flags say what the worker may ask of it. ``workflow_types`` maps a
    WES workflow type (``CWL``, ``WDL``, ``SMK``, ``GALAXY``, ``DEMO``) to the
    versions the backend accepts.
    """

    name: ClassVar[str]
    workflow_types: ClassVar[dict[str, list[str]]]
    is_simulation: ClassVar[bool] = False
    runs_locally: ClassVar[bool] = False
    supports_cancel: ClassVar[bool] = True
    supports_tasks: ClassVar[bool] = True
    engine_parameter_allowlist: ClassVar[frozenset[str]] = frozenset()
    # True when sync() runs its engine calls in parallel itself, bounded by sync_concurrency:
    # the worker then hands it all of a claim's runs in one call.
    parallel_sync: ClassVar[bool] = False
    # False when validate() only checks fields: submit then calls it on the event loop instead
    # of a thread (parsing a workflow, which engines do, can take hundreds of milliseconds).
    validation_blocks: ClassVar[bool] = True
    # True when a rerun can re-use the finished steps of an ended run (RunSpec.resume_from).
    resumes: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def workflow_document(self, handle: RunHandle) -> tuple[str, bytes] | None:
        """The workflow the engine ran, as a file (name, bytes), for an engine that stores it
        itself (Galaxy) rather than receiving it as an attachment; None when there is none."""
        return None

    def fast_sync(self) -> tuple[float, float] | None:
        """(window, interval): a run younger than ``window`` seconds is checked every ``interval``
        seconds instead of by the general schedule; None (the default) for no such window."""
        return None

    @classmethod
    def available(cls) -> bool:
        """True when the engine is installed here (its library or command found)."""
        return True

    @classmethod
    def missing_configuration(cls, settings: Settings) -> str | None:
        """Why the settings do not let this backend run (None when they do)."""
        return None

    @abstractmethod
    def engine_version(self) -> str:
        """The engine's version as installed (may ask the engine: call it off the event loop)."""

    def engine_parameter_defaults(self) -> dict[str, tuple[str, str]]:
        """Allowed engine parameters: name -> (type, default as a string), for service-info."""
        return {name: ("string", "") for name in sorted(self.engine_parameter_allowlist)}

    def validate(self, spec: RunSpec) -> None:
        """Reject at submit time what can be known bad then (raise InvalidInput)."""
        unknown = set(spec.engine_parameters) - self.engine_parameter_allowlist
        if unknown:
            from flowdeck.errors import InvalidInput

            allowed = ", ".join(sorted(self.engine_parameter_allowlist)) or "none"
            raise InvalidInput(
                f"workflow_engine_parameters not allowed for {self.name}: "
                f"{', '.join(sorted(unknown))} (allowed: {allowed})"
            )

    @abstractmethod
    def submit(self, spec: RunSpec) -> Submitted:
        """Start the run. Must be idempotent for a run id: a retried submit after
        a crash finds the run it already started instead of starting another."""

    @abstractmethod
    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        """Report on many runs at once; one report per handle, in any order."""

    @abstractmethod
    def cancel(self, handle: RunHandle) -> CancelResult:
        """Ask the engine to stop the run."""

    def recover(self, handle: RunHandle) -> SyncReport:
        """Called for a run found in flight when a worker starts. The default
        simply syncs it; local engines check their process still lives."""
        return self.sync([handle])[0]
