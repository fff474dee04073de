"""Run and task rows as WES documents: absent fields are left out, never null."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flowdeck.domain.runs import RunRecord, RunSummary
from flowdeck.services.runs.results import outputs_view

# The WES routes' prefix, written once (routes, links in documents, the error shape chosen by path).
WES = "/ga4gh/wes/v1"


def iso(value: datetime | None) -> str | None:
    """WES timestamps: ISO 8601, ``%Y-%m-%dT%H:%M:%SZ``."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# What a WES Log shows of a run or a task: the columns the two tables share.
_LOG_FIELDS = ("cmd", "start_time", "end_time", "stdout_path", "stderr_path", "exit_code", "system_logs")


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def run_summary(row: RunSummary) -> dict[str, Any]:
    return _compact(
        {
            "run_id": row.id,
            "state": row.state.value,
            "start_time": iso(row.start_time),
            "end_time": iso(row.end_time),
            "tags": row.tags,
        }
    )


def run_request(row: RunRecord) -> dict[str, Any]:
    return _compact(
        {
            "workflow_params": row.workflow_params,
            "workflow_type": row.workflow_type,
            "workflow_type_version": row.workflow_type_version,
            "tags": row.tags,
            "workflow_engine_parameters": row.workflow_engine_parameters,
            "workflow_engine": row.workflow_engine,
            "workflow_engine_version": row.workflow_engine_version,
            "workflow_url": row.workflow_url,
        }
    )


def run_log(row: RunRecord, base: str) -> dict[str, Any]:
    run_url = f"{base}{WES}/runs/{row.id}"
    fields = {name: getattr(row, name) for name in _LOG_FIELDS}
    log = _compact(_log(fields, row.pipeline_name or row.workflow_url, run_url))
    return _compact(
        {
            "run_id": row.id,
            "request": run_request(row),
            "state": row.state.value,
            "run_log": log,
            "task_logs_url": f"{run_url}/tasks",
            "outputs": outputs_view(row, run_url),
            "flowdeck": call_cache_view(row),
        }
    )


def call_cache_view(row: RunRecord) -> dict[str, Any] | None:
    """The run log's ``flowdeck`` extension: the call-cache key, and the run a hit took its outputs
    from (never a silent substitution); None for a run that did not ask for the cache."""
    if not row.cache_key and not row.cached_from:
        return None
    return {"cache_key": row.cache_key, "cached_from": row.cached_from}


def task_log(row: Mapping[Any, Any], base: str) -> dict[str, Any]:
    task_url = f"{base}{WES}/runs/{row['run_id']}/tasks/{row['id']}"
    return _compact({"id": row["id"], **_log(row, row["name"], task_url)})


def _log(row: Mapping[Any, Any], name: str, url: str) -> dict[str, Any]:
    """The fields of a WES Log (a run's or a task's); its stdout and stderr are served under ``url``."""
    return {
        "name": name,
        "cmd": row["cmd"],
        "start_time": iso(row["start_time"]),
        "end_time": iso(row["end_time"]),
        "stdout": f"{url}/logs/stdout" if row["stdout_path"] else None,
        "stderr": f"{url}/logs/stderr" if row["stderr_path"] else None,
        "exit_code": row["exit_code"],
        "system_logs": list(row["system_logs"] or []),
    }
