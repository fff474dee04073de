"""Turning run rows into the values backends take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import RowMapping

from flowdeck.domain.runs import RunHandle, RunSpec
from flowdeck.domain.states import State
from flowdeck.services.runs.attachments import run_folder


def spec_of(row: RowMapping, runs_dir: Path) -> RunSpec:
    folder = run_folder(runs_dir, row["id"])
    folder.work.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = row["backend_data"] or {}
    return RunSpec(
        run_id=row["id"],
        workflow_type=row["workflow_type"],
        workflow_type_version=row["workflow_type_version"],
        workflow_url=row["workflow_url"],
        workflow_params=row["workflow_params"] or {},
        workdir=folder.work,
        attachments_dir=folder.attachments,
        engine_parameters=row["workflow_engine_parameters"] or {},
        tags=row["tags"] or {},
        pipeline_target=data.get("pipeline_target") or {},
        dataset=data.get("dataset"),
        resume_from=run_folder(runs_dir, data["resume_from"]).work if data.get("resume_from") else None,
    )


def handle_of(row: RowMapping, runs_dir: Path) -> RunHandle:
    return RunHandle(
        run_id=row["id"],
        backend_run_id=row["backend_run_id"],
        backend_data=row["backend_data"] or {},
        workdir=run_folder(runs_dir, row["id"]).work,
        state=State(row["state"]),
        started_at=row["start_time"],
    )
