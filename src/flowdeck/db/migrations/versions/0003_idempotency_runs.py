"""the run an Idempotency-Key created, stored in the run's own commit

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 14:00:00

A key's answer was stored in a transaction after the run's: an API that died between the two
left a key without an answer, a retry got 409 until the key was taken over, and then a second
run was created. The link from key to run is now inserted in the same commit as the run
(services.group_commit), so a retry after a crash answers with that run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_runs",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_idempotency_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("scope", "endpoint", "key", name=op.f("pk_idempotency_runs")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_runs")
