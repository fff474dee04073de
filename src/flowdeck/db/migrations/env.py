"""Alembic environment: runs migrations on the async engine of the settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flowdeck.db.sqlite_stats import measure_unmeasured_indexes
from flowdeck.db.tables import UNMODELLED, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=lambda name, _type, _parents: name not in UNMODELLED,  # autogenerate keeps them
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        measure_unmeasured_indexes(connection)


async def _main() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # WAL from the start: the service never has to take the file to itself to switch.
            await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        elif connection.dialect.name == "mysql":
            # Tables made from here on keep any text (4-byte emoji too) and compare it byte for
            # byte, as SQLite and PostgreSQL do (MariaDB's default collations ignore case).
            await connection.exec_driver_sql("ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
