"""flowdeck's own run bookkeeping out of runs.backend_data, into its own columns

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 03:00:00

``backend_data`` held flowdeck's keys (``pipeline_target``, ``dataset``, ``resume_from``,
``cancel_sent``, ``input_datasets``, ``cache_inputs``) beside the engine's, and a backend's report was merged over it, so an engine
key of the same name overwrote flowdeck's. They move to typed columns (``cancel_sent`` becomes
the timestamp ``cancel_sent_at``); ``backend_data`` keeps only the engine's keys. The move
walks the runs in pages of ids, so a large table is never held in memory (docs/adr/0029).
Only plain ADD/DROP COLUMN: a SQLite batch rebuild of ``runs`` would drop the stored-bytes
triggers of 0012; updating these columns fires none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from flowdeck.db.tables import JSONType, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PAGE = 1000
_runs = sa.table(
    "runs",
    sa.column("id", sa.String(64)),
    sa.column("backend_data", JSONType),
    sa.column("pipeline_target", JSONType),
    sa.column("dataset", JSONType),
    sa.column("resume_from", sa.String(64)),
    sa.column("cancel_sent_at", UTCDateTime()),
    sa.column("input_datasets", JSONType),
    sa.column("cache_inputs", JSONType),
)
_COLUMNS = ("pipeline_target", "dataset", "resume_from", "cancel_sent_at", "input_datasets", "cache_inputs")


def upgrade() -> None:
    op.add_column("runs", sa.Column("pipeline_target", JSONType, nullable=True))
    op.add_column("runs", sa.Column("dataset", JSONType, nullable=True))
    op.add_column("runs", sa.Column("resume_from", sa.String(64), nullable=True))
    op.add_column("runs", sa.Column("cancel_sent_at", UTCDateTime(), nullable=True))
    op.add_column("runs", sa.Column("input_datasets", JSONType, nullable=True))
    op.add_column("runs", sa.Column("cache_inputs", JSONType, nullable=True))
    _rewrite([_runs.c.backend_data], _split)


def downgrade() -> None:
    _rewrite([_runs.c.backend_data, *(_runs.c[name] for name in _COLUMNS)], _fold)
    for name in reversed(_COLUMNS):
        op.drop_column("runs", name)


def _split(row: sa.RowMapping) -> dict[str, Any]:
    """The new values of one run: flowdeck's keys taken out of its backend_data."""
    data = dict(row["backend_data"] or {})
    sent = data.pop("cancel_sent", None)
    return {
        "pipeline_target": data.pop("pipeline_target", None),
        "dataset": data.pop("dataset", None),
        "resume_from": data.pop("resume_from", None),
        "cancel_sent_at": datetime.fromisoformat(sent) if isinstance(sent, str) else None,
        "input_datasets": data.pop("input_datasets", None),
        "cache_inputs": data.pop("cache_inputs", None),
        "backend_data": data,
    }


def _fold(row: sa.RowMapping) -> dict[str, Any]:
    """The old backend_data of one run: its bookkeeping columns folded back in, as 0012 wrote them."""
    data = dict(row["backend_data"] or {})
    data |= {"pipeline_target": row["pipeline_target"] or {}, "dataset": row["dataset"]}
    if row["resume_from"]:
        data["resume_from"] = row["resume_from"]
    if row["cancel_sent_at"] is not None:
        data["cancel_sent"] = row["cancel_sent_at"].isoformat()
    for name in ("input_datasets", "cache_inputs"):
        if row[name]:
            data[name] = row[name]
    return {"backend_data": data}


def _rewrite(columns: list[Any], change: Callable[[sa.RowMapping], dict[str, Any]]) -> None:
    """Apply ``change`` to every run, a page of ids at a time."""
    conn = op.get_bind()
    after = ""
    while True:
        page = conn.execute(
            sa.select(_runs.c.id, *columns).where(_runs.c.id > after).order_by(_runs.c.id).limit(PAGE)
        ).mappings()
        rows = [dict(change(row), run_id=row["id"]) for row in page]
        if not rows:
            return
        # executemany: the SET clause is every key of the rows but ``run_id``
        conn.execute(sa.update(_runs).where(_runs.c.id == sa.bindparam("run_id")), rows)
        after = rows[-1]["run_id"]
