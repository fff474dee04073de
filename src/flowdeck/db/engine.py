"""The database handle: one async engine, with read and write transactions that
behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from flowdeck.db import sqlite_inline
from flowdeck.settings import Settings

# How long a writer waits for SQLite's write lock before the request fails.
SQLITE_WRITE_TIMEOUT = 30.0
# AsyncConnection returns its connection to the pool in a shielded task, so a connection stays
# checked out a moment after its block ends; a pool smaller than the number of requests in
# flight would open and close a SQLite connection per request. They are cheap to keep.
SQLITE_POOL_SIZE = 32


class Database:
    """Owns the engine. ``read()`` and ``write()`` open one transaction each.

    On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that two
    writers queue on the busy timeout instead of failing on lock upgrade; reads
    use a deferred ``BEGIN`` and never block writers (WAL).
    """

    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        kwargs: dict[str, Any] = {}
        url = self.url
        if self.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            sqlite_inline.register()
            url = f"sqlite+{sqlite_inline.DRIVER}:" + self.url.split(":", 1)[1]
            # A pooled connection may next be checked out by an event loop in another thread
            # (upgrade() inside a running loop, tests); the pool never lends one to two users.
            kwargs.update(
                connect_args={"check_same_thread": False}, pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_SIZE
            )
        else:
            kwargs.update(
                pool_size=settings.database_pool_size, max_overflow=settings.database_pool_size, pool_pre_ping=True
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._connected_once = False
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def fetch_one(self, statement: Select[Any], parameters: dict[str, Any] | None = None) -> RowMapping | None:
        """The first row of one read statement (a point read), as a mapping.

        On SQLite it runs right here on a pooled connection, without the asyncio adapter's
        greenlet switches and shielded close: a primary-key read is a few microseconds there.
        """
        if self.is_sqlite:
            if self._connected_once:
                return self._fetch_one_sync(statement, parameters)
            # The pool's first connection runs SQLAlchemy's first-connect hooks, which await.
            row = await greenlet_spawn(self._fetch_one_sync, statement, parameters)
            self._connected_once = True
            return row
        async with self.read() as conn:
            return (await conn.execute(statement, parameters)).mappings().first()

    def _fetch_one_sync(self, statement: Select[Any], parameters: dict[str, Any] | None) -> RowMapping | None:
        with self.engine.sync_engine.connect() as conn:
            return conn.execute(statement, parameters).mappings().first()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block ends without error."""
        async with self.engine.connect() as conn:
            await conn.execution_options(flowdeck_write=True)
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's own is wrong).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL is a property of the file: switching needs the database to itself, so it is asked
    # for only when the file is not in WAL yet (a new database), never while others write.
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={sqlite_inline.STATEMENT_BUSY_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("flowdeck_write", False):
        sqlite_inline.begin_immediate(conn, SQLITE_WRITE_TIMEOUT)
    else:  # straight to the driver: a whole SQLAlchemy execution per read for one keyword
        sqlite_inline.begin_deferred(conn)
