"""events wake live streams: a PostgreSQL NOTIFY in the transaction that writes them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 17:00:00

``GET /events`` streams the audit trail. Every API process listens on the channel
``flowdeck_events``; a statement-level trigger sends one notification per INSERT statement into
``events``, whichever code path wrote it (a state change, a batch of new runs, a worker in
another process). PostgreSQL delivers a NOTIFY only when its transaction commits, so a stream
never wakes for an event that was rolled back. SQLite has no such channel: there the API polls
(settings.events_poll_seconds). See docs/events.md.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION flowdeck_events_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('flowdeck_events', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION flowdeck_events_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS flowdeck_events_notify()")
