"""fair-share dispatch: a group's queued runs and executing runs per group by index; a dispatch lock row

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:30:00

A worker claims queued runs group by group, the group with the fewest executing runs per weight
first (services.fair_share). Both reads walk an index: (state, research_group, next_check_at,
created_at) finds one group's next queued runs however long another group's queue is, and (state,
backend, research_group) counts executing runs per group without reading the table. The single
row of ``dispatch_locks`` serializes the count and the claim between workers on PostgreSQL and
MariaDB (SQLite has one writer at a time). See docs/quotas.md and docs/adr/0024-fair-share-dispatch.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_state_group_next_check_at", "runs", ["state", "research_group", "next_check_at", "created_at"]
    )
    op.create_index("ix_runs_state_backend_group", "runs", ["state", "backend", "research_group"])
    locks = op.create_table("dispatch_locks", sa.Column("name", sa.String(32), primary_key=True))
    op.bulk_insert(locks, [{"name": "dispatch"}])


def downgrade() -> None:
    op.drop_table("dispatch_locks")
    op.drop_index("ix_runs_state_backend_group", table_name="runs")
    op.drop_index("ix_runs_state_group_next_check_at", table_name="runs")
