"""requests.step_state: where a request's request-level step stands

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:45:00

NULL: the request has no step; ``waiting``: it will get one once its sample runs have
completed; ``created``: the step run exists (request_index = total_runs); ``skipped``:
a sample did not complete, so the step never runs. See docs/adr/0019.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("step_state", sa.String(16), nullable=True))
    op.create_index("ix_requests_step_state", "requests", ["step_state"])


def downgrade() -> None:
    op.drop_index("ix_requests_step_state", table_name="requests")
    op.drop_column("requests", "step_state")
