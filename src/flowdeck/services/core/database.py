"""The database as the server CLI sees it: its schema brought up to date, and a handle to it.

The CLI reaches the database only through here (and the use cases it calls), never ``db/``.
"""

from __future__ import annotations

from flowdeck.db.engine import Database
from flowdeck.settings import Settings

__all__ = ["Database", "downgrade", "open_database", "upgrade", "upgrade_in_child"]


def open_database(settings: Settings) -> Database:
    """A database handle (its engine connects lazily); the caller disposes of it."""
    return Database(settings)


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``."""
    from flowdeck.db import migrate  # alembic loads only for the commands that migrate

    migrate.upgrade(settings, revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Undo the migrations down to ``revision``."""
    from flowdeck.db import migrate  # alembic loads only for the commands that migrate

    migrate.downgrade(settings, revision)


def upgrade_in_child(settings: Settings) -> None:
    """Apply every migration in a forked child, before a long-running command starts serving."""
    from flowdeck.db import migrate  # alembic loads only for the commands that migrate

    migrate.upgrade_in_child(settings)
