"""Cost of reading runs as typed records (issue 14): a whole runs row from SQLite read as the
RowMapping it was before, and as a RunRecord (db.runs.record_of), and the record built through
its generated __init__ instead (what record_of avoids). Per row, in µs, least disturbed of
interleaved rounds (the machine is shared).

    .venv/bin/python bench/run_records.py
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flowdeck.db import runs as run_rows
from flowdeck.db.tables import metadata, runs
from flowdeck.domain.runs import RunRecord

ROWS, ROUNDS = 2000, 7
# What a job view reads of each run, the same fields both ways.
READ = ("id", "state", "pipeline_name", "workflow_params", "tags", "backend_data", "created_at", "end_time")


def _rows() -> list[Any]:
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(":memory:"))
    now = datetime.now(UTC)
    base = {"origin": "jobs", "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "wf.cwl"}
    values = [
        base
        | {"id": f"run-{i:06d}", "workflow_params": {"n": i}, "workflow_engine_parameters": {}, "tags": {"k": "v"}}
        | {"attachments": [], "backend": "cwltool", "backend_data": {"pid": i}, "state": "COMPLETE"}
        | {"system_logs": [], "created_at": now, "updated_at": now, "pipeline_target": {"workflow": "w"}}
        for i in range(ROWS)
    ]
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[runs])
        conn.execute(sa.insert(runs), values)
        return list(conn.execute(sa.select(runs)).mappings())


def _as_rows(rows: list[Any]) -> None:
    for row in rows:
        for name in READ:
            row[name]


def _as_records(rows: list[Any]) -> None:
    for record in map(run_rows.record_of, rows):
        for name in READ:
            getattr(record, name)


def _through_init(rows: list[Any]) -> None:
    names = [f.name for f in fields(RunRecord)]
    for row in rows:
        RunRecord(**{name: row[name] for name in names})


def main() -> None:
    rows = _rows()
    cases = {"RowMapping, 8 reads": _as_rows, "record_of + 8 reads": _as_records, "RunRecord(**row)": _through_init}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(ROUNDS):
        for name, case in cases.items():
            started = time.process_time()
            case(rows)
            best[name] = min(best[name], (time.process_time() - started) / ROWS * 1e6)
    for name, us in best.items():
        print(f"{name:22} {us:6.2f} µs a run")


if __name__ == "__main__":
    main()
