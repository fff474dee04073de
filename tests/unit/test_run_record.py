"""A run leaves db/ as a RunRecord: every column of the runs table, JSON defaults applied once."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from flowdeck.db import runs as run_rows
from flowdeck.db.tables import runs
from flowdeck.domain.runs import RunRecord, RunStatus, RunSummary
from flowdeck.domain.states import State


def _row(**values: Any) -> dict[str, Any]:
    """A runs row as the database gives it back: every column, NULL unless given."""
    return {column.name: None for column in runs.c} | values


def test_a_record_has_exactly_the_columns_of_the_runs_table() -> None:
    # A column added without its field (or a field without its column) fails here, not in a reader.
    assert [f.name for f in fields(RunRecord)] == [column.name for column in runs.c]


def test_json_columns_that_hold_nothing_read_as_empty_and_the_state_as_a_state() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    record = run_rows.record_of(_row(id="r1", state="RUNNING", created_at=now, check_failures=0))
    assert record.state is State.RUNNING
    assert (record.workflow_params, record.workflow_engine_parameters, record.tags) == ({}, {}, {})
    assert (record.backend_data, record.pipeline_target) == ({}, {})
    assert (record.attachments, record.system_logs) == ([], [])
    # Nullable documents keep their NULL: "no outputs yet" is not "no outputs".
    assert (record.outputs, record.output_files, record.results, record.dataset) == (None, None, None, None)


def test_stored_values_are_kept_as_stored() -> None:
    record = run_rows.record_of(_row(id="r2", state="COMPLETE", tags={"k": "v"}, backend_data={"kind": "x"}))
    assert (record.tags, record.backend_data) == ({"k": "v"}, {"kind": "x"})


def test_the_partial_reads_have_their_own_records() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    summary = {"id": "r3", "state": "QUEUED", "start_time": None, "end_time": None, "tags": None, "created_at": now}
    assert run_rows.summary_of(summary) == RunSummary("r3", State.QUEUED, None, None, {}, now)
    assert run_rows.status_of({"id": "r3", "state": "QUEUED", "research_group": "g"}) == RunStatus(
        "r3", State.QUEUED, "g"
    )
