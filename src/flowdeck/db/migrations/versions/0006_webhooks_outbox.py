"""webhook endpoints, e-mail preferences and the deliveries outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 19:30:00

A delivery row is written in the transaction that writes the event it announces
(services.outbox), so a delivery exists exactly for each committed event; the worker sends
it (services.deliveries). See docs/webhooks.md and docs/adr/0015-webhook-outbox.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowdeck.db.tables import JSONType, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("event_types", JSONType, nullable=False),
        sa.Column("research_group", sa.String(128), nullable=True),
        sa.Column("pipeline_name", sa.String(128), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhooks_research_group", "webhooks", ["research_group"])
    op.create_table(
        "notification_preferences",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("on_completion", sa.Boolean(), nullable=False),
        sa.Column("on_failure", sa.Boolean(), nullable=False),
        sa.Column("request_summary", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column(
            "webhook_id",
            sa.String(64),
            sa.ForeignKey("webhooks.id", ondelete="CASCADE", name="fk_deliveries_webhook_id_webhooks"),
            nullable=True,
        ),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("queue", sa.String(160), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_deliveries_state_queue_id", "deliveries", ["state", "queue", "id"])
    op.create_index("ix_deliveries_webhook_id_id", "deliveries", ["webhook_id", "id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("notification_preferences")
    op.drop_index("ix_webhooks_research_group", "webhooks")
    op.drop_table("webhooks")
