"""Stored rows as what the pages show: state words, times, sizes, links."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowdeck.api.ui.web import PREFIX
from flowdeck.domain.runs import RunRecord, RunStatus
from flowdeck.domain.states import is_terminal, simple_state
from flowdeck.errors import NotFound


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def size(value: int | None) -> str:
    """Bytes as people read them (1,536 bytes: 1.5 KiB)."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{value} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def stream_column(stream: str) -> str:
    if stream not in ("stdout", "stderr"):
        raise NotFound("logs are stdout or stderr")
    return f"{stream}_path"


def state_of(row: RunRecord | RunStatus) -> dict[str, Any]:
    """What the state badge needs (a status read has only id, state and group)."""
    state = row.state
    return {"id": row.id, "state": state.value, "word": simple_state(state), "ended": is_terminal(state)}


def run_row(row: RunRecord) -> dict[str, Any]:
    data = row.backend_data
    target = row.pipeline_target
    return {
        **state_of(row),
        "url": f"{PREFIX}/runs/{row.id}",
        "what": row.pipeline_name or target.get("workflow") or data.get("workflow_name") or row.workflow_url,
        "origin": row.origin,
        "group": row.research_group or "",
        "owner": row.owner or "",
        "description": row.description or "",
        "tags": row.tags,
        "created": when(row.created_at),
    }


def run_detail(row: RunRecord) -> dict[str, Any]:
    base = f"{PREFIX}/runs/{row.id}"
    files = [
        {"name": f.get("name") or f"output {i}", "size": size(f.get("size")), "checksum": f.get("checksum") or ""}
        | {"url": f"{base}/outputs/{i}"}
        for i, f in enumerate(row.output_files or [])
    ]
    return {
        **run_row(row),
        "workflow_url": row.workflow_url,
        "workflow_type": f"{row.workflow_type} {row.workflow_type_version}",
        "backend": row.backend,
        "backend_run_id": row.backend_run_id or "",
        "dataset_id": row.dataset_id or "",
        "request_id": row.request_id or "",
        "request_index": row.request_index,
        "rerun_of": row.rerun_of or "",
        "cached_from": row.cached_from or "",
        "error": row.error_message or "",
        "parameters": json.dumps(row.workflow_params, indent=2, sort_keys=True),
        "started": when(row.start_time),
        "ended_at": when(row.end_time),
        "logs": {s: f"{base}/logs/{s}" for s in ("stdout", "stderr") if getattr(row, f"{s}_path")},
        "files": files,
    }


def task(row: Mapping[Any, Any]) -> dict[str, Any]:
    base = f"{PREFIX}/runs/{row['run_id']}/tasks/{row['id']}/logs"
    return {
        "name": row["name"],
        "state": row["state"],
        "exit_code": "" if row["exit_code"] is None else row["exit_code"],
        "started": when(row["start_time"]),
        "ended": when(row["end_time"]),
        "logs": {s: f"{base}/{s}" for s in ("stdout", "stderr") if row[f"{s}_path"]},
    }


def event(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "at": when(row["at"]),
        "from_state": row["from_state"] or "",
        "to_state": row["to_state"] or "",
        "kind": row["kind"],
        "reason": row["reason"] or "",
        "actor": row["actor"] or "",
    }
