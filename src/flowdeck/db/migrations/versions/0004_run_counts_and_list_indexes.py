"""runs per (group, pipeline, state) kept as appended deltas; an index for every list filter

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 16:20:00

service-info, /metrics and /jobs' totals counted the runs table (200 ms at a million runs), and
a list filter that matches little walked the newest-first index to its end (a tag nothing
carries: 1.9 s). ``run_state_counts`` holds signed deltas per (research group, state): triggers
on ``runs`` append one row per insert, state change and delete in the writing transaction,
whichever code path writes. Appending takes no lock another writer waits for, so no two
transactions can deadlock on a shared counter row; the worker folds the deltas into one row per
key now and then (db.run_counts.compact). Existing runs are counted once here. A run without a
group (or pipeline) is counted under ''. ``run_tags`` gets its run's ``created_at`` so a tag filter pages
newest first from its own index. See docs/adr/0012-counts-and-filters-off-the-hot-path.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_APPEND = (
    "INSERT INTO run_state_counts (research_group, pipeline_name, state, n) "
    "VALUES (coalesce({row}.research_group, ''), coalesce({row}.pipeline_name, ''), {row}.state, {n})"
)
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER runs_count_insert AFTER INSERT ON runs BEGIN {_APPEND.format(row='NEW', n=1)}; END",
    "CREATE TRIGGER runs_count_update AFTER UPDATE OF state, research_group, pipeline_name ON runs "
    "WHEN OLD.state IS NOT NEW.state OR OLD.research_group IS NOT NEW.research_group "
    "OR OLD.pipeline_name IS NOT NEW.pipeline_name BEGIN "
    f"{_APPEND.format(row='OLD', n=-1)}; {_APPEND.format(row='NEW', n=1)}; END",
    f"CREATE TRIGGER runs_count_delete AFTER DELETE ON runs BEGIN {_APPEND.format(row='OLD', n=-1)}; END",
)
_POSTGRES_FUNCTION = (
    "CREATE FUNCTION runs_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP IN ('UPDATE', 'DELETE') THEN {_APPEND.format(row='OLD', n=-1)}; END IF; "
    f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {_APPEND.format(row='NEW', n=1)}; END IF; "
    "RETURN NULL; END $$"
)
_POSTGRES_TRIGGERS = (
    "CREATE TRIGGER runs_count_insert_delete AFTER INSERT OR DELETE ON runs FOR EACH ROW EXECUTE FUNCTION runs_count()",
    "CREATE TRIGGER runs_count_update AFTER UPDATE OF state, research_group, pipeline_name ON runs FOR EACH ROW "
    "WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.research_group IS DISTINCT FROM NEW.research_group "
    "OR OLD.pipeline_name IS DISTINCT FROM NEW.pipeline_name) "
    "EXECUTE FUNCTION runs_count()",
)
# MySQL/MariaDB: one trigger per event; the update's condition inside it (<=> is null-safe equality).
_MYSQL_TRIGGERS = (
    f"CREATE TRIGGER runs_count_insert AFTER INSERT ON runs FOR EACH ROW {_APPEND.format(row='NEW', n=1)}",
    "CREATE TRIGGER runs_count_update AFTER UPDATE ON runs FOR EACH ROW BEGIN "
    "IF NOT (OLD.state <=> NEW.state AND OLD.research_group <=> NEW.research_group "
    "AND OLD.pipeline_name <=> NEW.pipeline_name) THEN "
    f"{_APPEND.format(row='OLD', n=-1)}; {_APPEND.format(row='NEW', n=1)}; END IF; END",
    f"CREATE TRIGGER runs_count_delete AFTER DELETE ON runs FOR EACH ROW {_APPEND.format(row='OLD', n=-1)}",
)
# Each list filter walks its own index newest first, so a filter that matches nothing ends at once.
_INDEXES = {
    "ix_runs_state_created_at_id": ("state", "created_at", "id"),
    "ix_runs_pipeline_name_created_at_id": ("pipeline_name", "created_at", "id"),
    "ix_runs_dataset_id_created_at_id": ("dataset_id", "created_at", "id"),
    "ix_runs_request_id_created_at_id": ("request_id", "created_at", "id"),
}

_SUPERSEDED = ("pipeline_name", "dataset_id")


def upgrade() -> None:
    op.create_table(
        "run_state_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("research_group", sa.String(length=128), nullable=False),
        sa.Column("pipeline_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_state_counts")),
    )
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    if postgres:
        op.execute("LOCK TABLE runs IN SHARE MODE")  # no run changes between the backfill and the triggers
    op.execute(
        "INSERT INTO run_state_counts (research_group, pipeline_name, state, n) SELECT coalesce(research_group, ''), "
        "coalesce(pipeline_name, ''), state, count(*) FROM runs "
        "GROUP BY coalesce(research_group, ''), coalesce(pipeline_name, ''), state"
    )
    triggers = {"postgresql": (_POSTGRES_FUNCTION, *_POSTGRES_TRIGGERS), "mysql": _MYSQL_TRIGGERS}
    for statement in triggers.get(dialect, _SQLITE_TRIGGERS):
        op.execute(statement)
    for name, columns in _INDEXES.items():
        op.create_index(name, "runs", list(columns))
    for column in _SUPERSEDED:  # each the first column of one of _INDEXES
        op.drop_index(f"ix_runs_{column}", table_name="runs")
    op.add_column("run_tags", sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE run_tags SET created_at = (SELECT runs.created_at FROM runs WHERE runs.id = run_tags.run_id)")
    with op.batch_alter_table("run_tags") as batch:
        batch.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        "ix_run_tags_key_value_created_at_run_id",
        "run_tags",
        ["key", "value", "created_at", "run_id"],
        mysql_length={"value": 255},  # MySQL indexes a TEXT column by a prefix only
    )
    op.drop_index("ix_run_tags_key_value", table_name="run_tags")


def downgrade() -> None:
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value"], mysql_length={"value": 255})
    op.drop_index("ix_run_tags_key_value_created_at_run_id", table_name="run_tags")
    with op.batch_alter_table("run_tags") as batch:
        batch.drop_column("created_at")
    for column in _SUPERSEDED:
        op.create_index(f"ix_runs_{column}", "runs", [column])
    for name in _INDEXES:
        op.drop_index(name, table_name="runs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER runs_count_update ON runs")
        op.execute("DROP TRIGGER runs_count_insert_delete ON runs")
        op.execute("DROP FUNCTION runs_count()")
    else:
        for name in ("runs_count_insert", "runs_count_update", "runs_count_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("run_state_counts")
