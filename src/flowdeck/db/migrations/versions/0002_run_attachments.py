"""run attachments stored in the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 12:00:00

A run's uploaded files were written to its folder by the API before the run's row was committed:
two directories and a file per submission (about 1 ms of system time on these machines' ext4),
and a folder the worker had to share with the API. They are now rows stored in the run's own
transaction; the worker writes the folder when it dispatches the run. Runs stored before this
revision keep their files in their folder only (services.runs.attachments_of reads both).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_attachments",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_attachments_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_attachments")),
    )


def downgrade() -> None:
    op.drop_table("run_attachments")
