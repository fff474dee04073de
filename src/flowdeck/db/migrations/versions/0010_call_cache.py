"""runs.cache_key and runs.cached_from: call caching of whole runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 02:40:00

``cache_key`` is the SHA-256 of what a run's result depends on (domain.call_cache), set at
submit on runs that asked for ``use_cached``; ``cached_from`` names the completed run whose
outputs answered a cache hit (no foreign key: the source may be deleted later, the cached run
keeps its own copies). The index makes a lookup one probe: key, research group, COMPLETE,
newest end first (docs/adr/0026-call-caching-of-whole-runs.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("cache_key", sa.String(64), nullable=True))
    op.add_column("runs", sa.Column("cached_from", sa.String(64), nullable=True))
    op.create_index(
        "ix_runs_cache_key_group_state_end_time", "runs", ["cache_key", "research_group", "state", "end_time"]
    )


def downgrade() -> None:
    op.drop_index("ix_runs_cache_key_group_state_end_time", table_name="runs")
    op.drop_column("runs", "cached_from")
    op.drop_column("runs", "cache_key")
