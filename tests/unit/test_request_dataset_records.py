"""Requests and datasets leave db/ as frozen records: every column, JSON defaults applied once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from flowdeck.db import datasets as dataset_rows
from flowdeck.db import requests as request_rows
from flowdeck.db.tables import datasets, requests
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.requests import RequestRecord, RequestSummary

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _row(table: Any, **values: Any) -> dict[str, Any]:
    """A row as the database gives it back: every column, NULL unless given."""
    return {column.name: None for column in table.c} | values


def test_the_records_have_exactly_the_columns_of_their_tables() -> None:
    # A column added without its field (or a field without its column) fails here, not in a reader.
    assert {f.name for f in dataclasses.fields(DatasetRecord)} == {c.name for c in datasets.c}
    assert {f.name for f in dataclasses.fields(RequestRecord)} == {c.name for c in requests.c}
    assert {f.name for f in dataclasses.fields(RequestSummary)} == {c.name for c in request_rows.SUMMARY}


def test_a_dataset_without_extra_reads_as_empty_and_not_pending() -> None:
    record = dataset_rows.record_of(_row(datasets, id="d1", name="reads", created_at=NOW, updated_at=NOW))
    assert (record.extra, record.pending_upload) == ({}, False)
    pending = dataset_rows.record_of(_row(datasets, id="d2", name="x", extra={"pending_upload": True}))
    assert pending.pending_upload is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        pending.name = "y"  # type: ignore[misc]


def test_a_request_reads_with_or_without_its_spec() -> None:
    row = _row(requests, id="q1", state="new", total_runs=2, cancel_requested=False, spec={"items": []})
    assert request_rows.record_of(row).spec == {"items": []}
    summary = request_rows.summary_of(row)
    assert (summary.id, summary.total_runs, summary.step_state) == ("q1", 2, None)
    assert not hasattr(summary, "spec")


def test_a_request_run_without_parameters_reads_them_as_empty() -> None:
    run = request_rows.run_of(
        {
            "id": "r1",
            "request_index": 0,
            "state": "QUEUED",
            "dataset_id": None,
            "error_message": None,
            "created_at": NOW,
            "updated_at": NOW,
            "workflow_params": None,
        }
    )
    assert run.workflow_params == {}
