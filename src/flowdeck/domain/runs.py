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


@dataclass(frozen=True)
class RunRecord:
    """One stored run as every layer above ``db/`` reads it (built by ``db.runs.record_of``,
    which reads JSON columns that hold nothing as empty, so readers never write ``or {}``).

    ``backend_data`` is the engine's own; ``pipeline_target``, ``dataset``, ``resume_from``,
    ``cancel_sent_at``, ``input_datasets`` and ``cache_inputs`` are flowdeck's bookkeeping, which
    no engine report touches (docs/adr/0029).
    """

    id: str
    request_id: str | None
    request_index: int | None
    pipeline_name: str | None
    pipeline_version: str | None
    dataset_id: str | None
    research_group: str | None
    owner: str | None
    description: str | None
    origin: str
    workflow_type: str
    workflow_type_version: str
    workflow_url: str
    workflow_params: dict[str, Any]
    workflow_engine: str | None
    workflow_engine_version: str | None
    workflow_engine_parameters: dict[str, str]
    tags: dict[str, str]
    attachments: list[str]
    backend: str
    backend_run_id: str | None
    backend_data: dict[str, Any]
    pipeline_target: dict[str, Any]
    dataset: dict[str, Any] | None
    resume_from: str | None
    cancel_sent_at: datetime | None
    input_datasets: dict[str, str]
    state: State
    state_version: int
    error_message: str | None
    system_logs: list[str]
    outputs: dict[str, Any] | None
    output_files: list[dict[str, Any]] | None
    exit_code: int | None
    cmd: list[str] | None
    stdout_path: str | None
    stderr_path: str | None
    results: dict[str, Any] | None
    stored_bytes: int
    created_at: datetime
    updated_at: datetime
    start_time: datetime | None
    end_time: datetime | None
    last_progress_at: datetime | None
    rerun_of: str | None
    cache_key: str | None
    cached_from: str | None
    cache_inputs: dict[str, str]
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_check_at: datetime | None
    check_failures: int
    last_check_error: str | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a list of runs shows of each (WES RunSummary) and pages by."""

    id: str
    state: State
    start_time: datetime | None
    end_time: datetime | None
    tags: dict[str, str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What a status answer reads of one run."""

    id: str
    state: State
    research_group: str | None
