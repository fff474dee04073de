"""Apply Alembic migrations: the only way flowdeck's schema is made."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from flowdeck.forked import check_in_child
from flowdeck.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at flowdeck's migrations and database."""
    from alembic.config import Config

    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``. Safe to call from inside an event loop."""
    from alembic import command

    config = alembic_config(settings)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # env.py runs its own loop; give it a thread when one is already running.
    error: list[BaseException] = []

    def target() -> None:
        try:
            command.upgrade(config, revision)
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]


def downgrade(settings: Settings, revision: str) -> None:
    """Step the database back to ``revision``."""
    from alembic import command

    command.downgrade(alembic_config(settings), revision)


def upgrade_in_child(settings: Settings) -> None:
    """``upgrade`` in a forked child, for long-running commands before they start serving.

    Alembic and its templating stack take ~10 MB that a server would keep for its whole life
    after one use at start; the child takes them with it.
    """
    check_in_child(lambda: upgrade(settings), "database migration")
