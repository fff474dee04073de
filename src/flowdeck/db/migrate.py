"""Apply Alembic migrations: the only way flowdeck's schema is made."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from flowdeck.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at flowdeck's migrations and database."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``. Safe to call from inside an event loop."""
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
    command.downgrade(alembic_config(settings), revision)
