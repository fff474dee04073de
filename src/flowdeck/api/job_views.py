"""Runs as jobs: seed 002's JobResponse fields next to seed 000's invocation fields.

The state words come from :mod:`flowdeck.domain.states` (see docs/jobs.md):
``status`` is seed 002's word, ``state`` seed 000's, ``wes_state`` the WES state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowdeck.api.wes_views import WES
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import seed_status, simple_state
from flowdeck.services.runs.results import outputs_view


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_view(row: RunRecord, base: str) -> dict[str, Any]:
    state = row.state
    data = row.backend_data
    target = row.pipeline_target
    job_url = f"{base}/jobs/{row.id}"
    tool_request = data.get("kind") == "tool_request"  # a Galaxy tool run (docs/galaxy-tools.md)
    shown_tool = {key: data.get(key) for key in ("tool_request_id", "galaxy_request")} if tool_request else {}
    return shown_tool | {
        "id": row.id,
        "status": seed_status(state),
        "state": simple_state(state),
        "wes_state": state.value,
        "pipeline_name": row.pipeline_name,
        "pipeline_version": row.pipeline_version,
        "workflow_name": target.get("workflow") or data.get("workflow_name"),
        "parameters": row.workflow_params,
        "description": row.description,
        "research_group": row.research_group,
        "owner": row.owner,
        "origin": row.origin,
        "dataset_id": row.dataset_id,
        "invocation_id": row.backend_run_id if row.backend == "galaxy" and not tool_request else None,
        "backend": row.backend,
        "backend_run_id": row.backend_run_id,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "started_at": _iso(row.start_time),
        "completed_at": _iso(row.end_time),
        "error_message": row.error_message,
        "rerun_of": row.rerun_of,
        "cached_from": row.cached_from,  # a call-cache hit: whose outputs these are
        "cache_key": row.cache_key,
        "outputs": outputs_view(row, f"{base}{WES}/runs/{row.id}"),
        "links": {
            "self": job_url,
            "events": f"{job_url}/events",
            "cancel": f"{job_url}/cancel",
            "rerun": f"{job_url}/rerun",
            "wes_run_log": f"{base}{WES}/runs/{row.id}",
        },
    }


def event_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "at": _iso(row["at"]),
        "kind": row["kind"],
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "reason": row["reason"],
        "actor": row["actor"],
    }
