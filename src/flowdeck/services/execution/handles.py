"""Turning run rows into the values backends take."""

from __future__ import annotations

from pathlib import Path

from flowdeck.domain.runs import RunHandle, RunRecord, RunSpec
from flowdeck.services.runs.attachments import run_folder


def prepare_spec(row: RunRecord, runs_dir: Path) -> RunSpec:
    """The run's RunSpec for its backend, its work folder made first."""
    folder = run_folder(runs_dir, row.id)
    folder.work.mkdir(parents=True, exist_ok=True)
    return RunSpec(
        run_id=row.id,
        workflow_type=row.workflow_type,
        workflow_type_version=row.workflow_type_version,
        workflow_url=row.workflow_url,
        workflow_params=row.workflow_params,
        workdir=folder.work,
        attachments_dir=folder.attachments,
        engine_parameters=row.workflow_engine_parameters,
        tags=row.tags,
        pipeline_target=row.pipeline_target,
        dataset=row.dataset,
        resume_from=run_folder(runs_dir, row.resume_from).work if row.resume_from else None,
    )


def handle_of(row: RunRecord, runs_dir: Path) -> RunHandle:
    return RunHandle(
        run_id=row.id,
        backend_run_id=row.backend_run_id,
        backend_data=row.backend_data,
        workdir=run_folder(runs_dir, row.id).work,
        state=row.state,
        started_at=row.start_time,
    )
