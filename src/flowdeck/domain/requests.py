"""A stored Request (seed 001: many runs of one pipeline) as every layer above ``db/`` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """A requests row without its (possibly large) ``spec``: what lists, reads and cancels see.

    Built by ``db.requests.summary_of``; ``RequestRecord`` adds the spec.
    """

    id: str
    research_group: str | None
    owner: str | None
    pipeline_name: str | None
    pipeline_version: str | None
    state: str
    message: str | None
    total_runs: int
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    # The request-level step (docs/adr/0019): None none, waiting, created, skipped.
    step_state: str | None


@dataclass(frozen=True, slots=True)
class RequestRecord(RequestSummary):
    """A whole requests row: the summary and the spec (its items and description), which
    expansion and the request-level step read (built by ``db.requests.record_of``)."""

    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestRun:
    """What a request's page of runs shows of each run (``db.requests.run_page``)."""

    id: str
    request_index: int
    state: str
    dataset_id: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    workflow_params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SampleRun:
    """A sample run of a request, as its request-level step reads it (``db.requests.sample_runs``)."""

    id: str
    request_index: int
    workflow_params: dict[str, Any]
    output_files: list[dict[str, Any]]
