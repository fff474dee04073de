"""run results in storage, and the audit of deleted runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 22:40:00

``runs.results`` records what the worker put into storage when the run ended (output files and
logs: storage key, size, checksum), so the API serves them from storage and never from a
worker's run folder. ``run_deletions`` keeps one audit row per deleted or purged run: a run's
events go with its row, so the record that it existed and who removed it must live apart
(docs/storage.md, docs/adr/0021-results-through-storage.md). The index finds the runs a
retention purge removes without reading every ended run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowdeck.db.tables import JSONType, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("results", JSONType, nullable=True))
    op.create_index("ix_runs_state_end_time", "runs", ["state", "end_time"])
    op.create_table(
        "run_deletions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("research_group", sa.String(128), nullable=True, index=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("pipeline_name", sa.String(128), nullable=True),
        sa.Column("workflow_url", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_created_at", UTCDateTime(), nullable=True),
        sa.Column("run_end_time", UTCDateTime(), nullable=True),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_deletions")
    op.drop_index("ix_runs_state_end_time", table_name="runs")
    op.drop_column("runs", "results")
