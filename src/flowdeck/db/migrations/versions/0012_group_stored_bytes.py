"""bytes each research group holds in storage, kept as appended deltas

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06 03:00:00

``runs.stored_bytes`` is what the run's ``results`` record holds in storage (outputs and logs),
written with the record. Triggers on ``runs`` append the change to ``group_stored_bytes`` (one
signed delta per insert, change of bytes or group, and delete) in the writing transaction,
whichever code path writes, so a group's usage is the sum of its few rows (one after the worker
folds them, db.run_counts.compact) and the submit-time quota check never reads the runs table.
Runs already stored are measured and counted once here. See docs/quotas.md.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from flowdeck.db.tables import JSONType

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

_BATCH = 1000
_APPEND = (
    "INSERT INTO group_stored_bytes (research_group, bytes) "
    "VALUES (coalesce({row}.research_group, ''), {sign}{row}.stored_bytes)"
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER runs_bytes_insert AFTER INSERT ON runs WHEN NEW.stored_bytes <> 0 "
    f"BEGIN {_APPEND.format(row='NEW', sign='')}; END",
    "CREATE TRIGGER runs_bytes_update AFTER UPDATE OF stored_bytes, research_group ON runs "
    "WHEN OLD.stored_bytes IS NOT NEW.stored_bytes OR OLD.research_group IS NOT NEW.research_group BEGIN "
    f"{_APPEND.format(row='OLD', sign='-')}; {_APPEND.format(row='NEW', sign='')}; END",
    "CREATE TRIGGER runs_bytes_delete AFTER DELETE ON runs WHEN OLD.stored_bytes <> 0 "
    f"BEGIN {_APPEND.format(row='OLD', sign='-')}; END",
)
_POSTGRES_FUNCTION = (
    "CREATE FUNCTION runs_bytes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.stored_bytes <> 0 THEN {_APPEND.format(row='OLD', sign='-')}; END IF; "
    f"IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.stored_bytes <> 0 THEN {_APPEND.format(row='NEW', sign='')}; END IF; "
    "RETURN NULL; END $$"
)
_POSTGRES_TRIGGERS = (
    "CREATE TRIGGER runs_bytes_insert_delete AFTER INSERT OR DELETE ON runs FOR EACH ROW EXECUTE FUNCTION runs_bytes()",
    "CREATE TRIGGER runs_bytes_update AFTER UPDATE OF stored_bytes, research_group ON runs FOR EACH ROW "
    "WHEN (OLD.stored_bytes IS DISTINCT FROM NEW.stored_bytes "
    "OR OLD.research_group IS DISTINCT FROM NEW.research_group) EXECUTE FUNCTION runs_bytes()",
)
_MYSQL_TRIGGERS = (
    "CREATE TRIGGER runs_bytes_insert AFTER INSERT ON runs FOR EACH ROW BEGIN "
    f"IF NEW.stored_bytes <> 0 THEN {_APPEND.format(row='NEW', sign='')}; END IF; END",
    "CREATE TRIGGER runs_bytes_update AFTER UPDATE ON runs FOR EACH ROW BEGIN "
    "IF NOT (OLD.stored_bytes <=> NEW.stored_bytes AND OLD.research_group <=> NEW.research_group) THEN "
    f"{_APPEND.format(row='OLD', sign='-')}; {_APPEND.format(row='NEW', sign='')}; END IF; END",
    "CREATE TRIGGER runs_bytes_delete AFTER DELETE ON runs FOR EACH ROW BEGIN "
    f"IF OLD.stored_bytes <> 0 THEN {_APPEND.format(row='OLD', sign='-')}; END IF; END",
)
_TRIGGER_NAMES = ("runs_bytes_insert", "runs_bytes_update", "runs_bytes_delete")


def _stored_bytes(results: Any) -> int:
    """What a results record holds in storage (services.results.stored_bytes as of this revision)."""
    if not results:
        return 0
    logs = results.get("logs", {})
    entries = [f for f in results.get("files", []) if f.get("key")]
    for stored in [logs.get("run", {}), *logs.get("tasks", {}).values()]:
        entries += list(stored.values())
    return sum(int(entry.get("size") or 0) for entry in entries)


def _backfill() -> dict[str, int]:
    """Measure every run with a results record (a batch at a time, by id); bytes per group."""
    conn = op.get_bind()
    runs = sa.table(
        "runs",
        sa.column("id", sa.String()),
        sa.column("research_group", sa.String()),
        sa.column("results", JSONType),
        sa.column("stored_bytes", sa.BigInteger()),
    )
    per_group: dict[str, int] = defaultdict(int)
    after = ""
    while True:
        query = sa.select(runs.c.id, runs.c.research_group, runs.c.results).where(
            runs.c.results.is_not(None), runs.c.id > after
        )
        batch = conn.execute(query.order_by(runs.c.id).limit(_BATCH)).all()
        if not batch:
            return per_group
        measured = [{"run_id": i, "n": _stored_bytes(r)} for i, _g, r in batch]
        sized = [m for m in measured if m["n"]]
        if sized:
            update = sa.update(runs).where(runs.c.id == sa.bindparam("run_id")).values(stored_bytes=sa.bindparam("n"))
            conn.execute(update, sized)
        for (_i, group, _r), m in zip(batch, measured, strict=True):
            per_group[group or ""] += m["n"]
        after = batch[-1][0]


def upgrade() -> None:
    op.add_column("runs", sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "group_stored_bytes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("research_group", sa.String(length=128), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_stored_bytes")),
    )
    op.create_index("ix_group_stored_bytes_research_group_bytes", "group_stored_bytes", ["research_group", "bytes"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("LOCK TABLE runs IN SHARE MODE")  # no run changes between the backfill and the triggers
    sums = [{"research_group": g, "bytes": n} for g, n in sorted(_backfill().items()) if n]
    if sums:
        table = sa.table("group_stored_bytes", sa.column("research_group", sa.String()), sa.column("bytes"))
        op.get_bind().execute(sa.insert(table), sums)
    triggers = {"postgresql": (_POSTGRES_FUNCTION, *_POSTGRES_TRIGGERS), "mysql": _MYSQL_TRIGGERS}
    for statement in triggers.get(dialect, _SQLITE_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER runs_bytes_update ON runs")
        op.execute("DROP TRIGGER runs_bytes_insert_delete ON runs")
        op.execute("DROP FUNCTION runs_bytes()")
    else:
        for name in _TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("group_stored_bytes")
    op.drop_column("runs", "stored_bytes")
