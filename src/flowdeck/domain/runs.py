"""Value types that cross the backend boundary. Backends take and return these;
they never see the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdeck.domain.states import State

# How a run parameter names a registered dataset: dataset:<the id /datasets answers> (docs/staging.md).
DATASET_INPUT = "dataset:"


@dataclass(frozen=True)
class RunSpec:
    """Everything a backend needs to start one run."""

    run_id: str
    workflow_type: str
    workflow_type_version: str
    workflow_url: str
    workflow_params: dict[str, Any]
    workdir: Path
    attachments_dir: Path
    engine_parameters: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pipeline_target: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    # The work folder of an ended run whose finished steps this run re-uses (a resumed rerun).
    resume_from: Path | None = None


@dataclass(frozen=True)
class RunHandle:
    """What the backend returned at submit, given back to it on every later call."""

    run_id: str
    backend_run_id: str | None
    backend_data: dict[str, Any]
    workdir: Path
    state: State
    started_at: datetime | None = None


@dataclass(frozen=True)
class Submitted:
    """The result of a successful submit."""

    backend_run_id: str
    backend_data: dict[str, Any] = field(default_factory=dict)
    state: State = State.RUNNING


@dataclass(frozen=True)
class TaskInfo:
    """One step or job inside a run, as the engine reports it."""

    backend_task_id: str
    name: str
    state: State
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    cmd: list[str] | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    system_logs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputFile:
    """One output file of a finished run."""

    name: str
    location: str
    size: int | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class SyncReport:
    """What a backend learned about one run. ``state=None`` means no news.

    A transient error (engine unreachable, timeout) is not a state: the worker
    keeps the run's state and retries after ``retry_after`` seconds.
    """

    run_id: str
    state: State | None = None
    reason: str | None = None
    transient_error: str | None = None
    retry_after: float | None = None
    tasks: list[TaskInfo] | None = None
    outputs: dict[str, Any] | None = None
    output_files: list[OutputFile] | None = None
    exit_code: int | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    cmd: list[str] | None = None
    system_logs: list[str] = field(default_factory=list)
    backend_data: dict[str, Any] | None = None
    progressed: bool = False
    # Set by the worker when the backend itself raised on this run (a bug or a
    # corrupt record, not an unreachable engine): repeated, it ends the run.
    backend_failed: bool = False


@dataclass(frozen=True)
class CancelResult:
    """``confirmed`` when the engine has already stopped the run."""

    confirmed: bool
    message: str | None = None
