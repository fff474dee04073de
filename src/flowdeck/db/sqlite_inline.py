"""SQLite for the async engine without a thread hop per statement.

aiosqlite runs every statement on a helper thread and wakes the event loop for each result:
a primary-key read costs ~0.7 ms that way against ~20 µs in the calling thread. SQLite in WAL
mode answers flowdeck's statements (point reads, short writes, keyset pages) in microseconds, so
this dialect runs them in the event loop's own thread, behind SQLAlchemy's asyncio API.

What keeps that safe:

- Readers never wait in WAL mode, so a read can never block the loop on a lock.
- A writer that finds the write lock taken (``BEGIN IMMEDIATE`` answers SQLITE_BUSY) must not
  sleep in SQLite's busy handler, which would block the loop and, when the lock holder is a
  coroutine of this same loop, never let it finish. ``begin_immediate`` asks with the busy
  timeout at zero and waits with ``asyncio.sleep`` between attempts, up to the configured
  timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.exc import OperationalError as DBAPIOperationalError
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

DRIVER = "flowdeck_inline"
# Short enough that a rare busy read (WAL recovery by another process) barely blocks the loop.
STATEMENT_BUSY_MS = 50


class InlineCursor(sqlite3.Cursor):
    """A pysqlite cursor with the one coroutine SQLAlchemy's async results call."""

    async def _async_soft_close(self) -> None:
        return None


class InlineConnection(sqlite3.Connection):
    """A pysqlite connection whose cursors are ``InlineCursor``."""

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


class SQLiteInlineDialect(SQLiteDialect_pysqlite):
    """pysqlite, declared async so that ``create_async_engine`` takes it; it never awaits I/O."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        kwargs["factory"] = InlineConnection
        return args, kwargs

    # AsyncConnection.execute insists that a statement awaited something; a finished awaitable
    # satisfies it without a trip through the event loop.
    def do_execute(
        self, cursor: DBAPICursor, statement: str, parameters: Any, context: ExecutionContext | None = None
    ) -> None:
        _declare_await()
        super().do_execute(cursor, statement, parameters, context)  # type: ignore[no-untyped-call]

    def do_execute_no_params(
        self, cursor: DBAPICursor, statement: str, context: ExecutionContext | None = None
    ) -> None:
        _declare_await()
        super().do_execute_no_params(cursor, statement, context)  # type: ignore[no-untyped-call]

    def do_executemany(
        self, cursor: DBAPICursor, statement: str, parameters: Any, context: ExecutionContext | None = None
    ) -> None:
        _declare_await()
        super().do_executemany(cursor, statement, parameters, context)  # type: ignore[no-untyped-call]


async def _done() -> None:
    return None


def _declare_await() -> None:
    if in_greenlet():
        await_only(_done())


def register() -> None:
    """Make ``sqlite+flowdeck_inline://`` known to SQLAlchemy (idempotent)."""
    from sqlalchemy.dialects import registry

    registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteInlineDialect")


def begin_deferred(conn: Connection) -> None:
    """``BEGIN``: a read transaction (in WAL mode it never waits)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("BEGIN")


def begin_immediate(conn: Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock without blocking the event loop."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    begin_immediate_raw(raw, timeout)


def begin_immediate_raw(raw: Any, timeout: float) -> None:
    """:func:`begin_immediate` on a DBAPI connection: in a greenlet the wait yields to the event
    loop; on a thread of its own (Database.insert_rows) it sleeps there."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    # The error SQLAlchemy raises for a failed statement, as before this dialect.
                    raise DBAPIOperationalError("BEGIN IMMEDIATE", None, exc) from exc
            if in_greenlet():
                await_only(asyncio.sleep(delay))
            else:  # a synchronous caller on a thread of its own
                time.sleep(delay)
            delay = min(delay * 2, 0.05)
    finally:
        raw.execute(f"PRAGMA busy_timeout={STATEMENT_BUSY_MS}")


__all__ = ["DRIVER", "SQLiteInlineDialect", "begin_deferred", "begin_immediate", "begin_immediate_raw", "register"]
