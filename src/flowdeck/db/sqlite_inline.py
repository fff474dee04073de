"""SQLite's one fast path: every SQLite statement flowdeck sends goes through :class:`SQLitePath`.

aiosqlite runs every statement on a helper thread and wakes the event loop for each result:
a primary-key read costs ~0.7 ms that way against ~20 µs in the calling thread. SQLite in WAL
mode answers flowdeck's statements (point reads, short writes, keyset pages) in microseconds, so
this module's dialect runs them in the event loop's own thread, behind SQLAlchemy's asyncio API,
and :class:`SQLitePath` adds the two hot paths SQLAlchemy's execution is too slow for (point
reads, batches of new runs). Its invariants are in its docstring.

It leans on one SQLAlchemy detail that is not public API: the async result classes await a
cursor's ``_async_soft_close`` (``InlineCursor``). SQLAlchemy is pinned below the next minor
version (pyproject.toml); tests/integration/test_sqlite_inline.py and test_point_read.py hold
this path to SQLAlchemy's own behaviour and are the gate for raising the pin.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Select, Table, event, insert, pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, Dialect
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.exc import DBAPIError, MissingGreenlet, StatementError
from sqlalchemy.exc import OperationalError as DBAPIOperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_only, greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

DRIVER = "flowdeck_inline"
# Short enough that a rare busy read (WAL recovery by another process) barely blocks the loop.
STATEMENT_BUSY_MS = 50
# How long a writer waits for SQLite's write lock before the request fails.
WRITE_TIMEOUT = 30.0
_T = TypeVar("_T")
Processor = Callable[[Any], Any]
Binder = Callable[[Mapping[str, Any]], tuple[Any, ...]]
Rows = list[tuple[Table, list[Mapping[str, Any]]]]


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
        if url.database and url.database != ":memory:" and url.query.get("mode") != "memory":
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool  # one in-memory database: every user shares its one connection

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


def _binder(names: tuple[str, ...], processors: Sequence[Processor | None]) -> Binder:
    """The DBAPI parameters of a compiled statement from a mapping: each named value through its
    bind processor (KeyError for a missing one)."""
    if not names:
        return lambda values: ()
    pick = itemgetter(*names)
    single = len(names) == 1
    converted = tuple((i, process) for i, process in enumerate(processors) if process is not None)

    def bind(values: Mapping[str, Any]) -> tuple[Any, ...]:
        picked = (pick(values),) if single else pick(values)
        if not converted:
            return picked
        bound = list(picked)
        for i, process in converted:
            bound[i] = process(bound[i])
        return tuple(bound)

    return bind


def _bind_processor(column_type: Any, dialect: Dialect) -> Processor | None:
    return column_type.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _CompiledRead:
    """A point read's SQL, with SQLAlchemy's own value conversions."""

    sql: str
    values: Binder  # the DBAPI parameters from the caller's named values
    keys: tuple[str, ...]
    result_processors: tuple[Processor | None, ...]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> _CompiledRead:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        if any(not bind.required or bind.expanding for bind in binds):
            raise ValueError("a point read takes each value as a named bindparam, and no IN lists")
        columns = list(statement.selected_columns)
        return cls(
            sql=compiled.string,
            values=_binder(names, [_bind_processor(bind.type, dialect) for bind in binds]),
            keys=tuple(statement.selected_columns.keys()),
            result_processors=tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns),
        )

    def row(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, values, self.result_processors, strict=True)
        }


@dataclass(frozen=True)
class _CompiledInsert:
    """An INSERT of some columns of a table, with SQLAlchemy's own value conversions."""

    sql: str
    values: Binder  # the DBAPI parameters from a row's values

    @classmethod
    def of(cls, table: Table, columns: tuple[str, ...], dialect: Dialect) -> _CompiledInsert:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        names = tuple(compiled.positiontup or ())
        if set(names) != set(columns):  # a Python-side default SQLAlchemy would have computed
            raise ValueError(f"insert into {table.name} needs values for exactly {sorted(names)}")
        return cls(
            sql=compiled.string, values=_binder(names, [_bind_processor(table.c[n].type, dialect) for n in names])
        )


class SQLitePath:
    """Every SQLite statement of one :class:`~flowdeck.db.engine.Database`, and what keeps them safe.

    Invariants:

    - **No thread hop per statement.** SQLAlchemy's statements run in the caller's thread (the
      dialect above); point reads run there too; only a batch of inserts runs in a worker thread,
      whose SQLite work (inserts, the commit's WAL writes) releases the GIL.
    - **The event loop never waits on SQLite's busy handler.** Readers never wait in WAL mode; a
      write transaction's ``BEGIN IMMEDIATE`` asks with the busy timeout at zero and waits with
      ``asyncio.sleep`` (:func:`begin_immediate_raw`), up to :data:`WRITE_TIMEOUT`.
    - **Reads are deferred ``BEGIN``s, writes ``BEGIN IMMEDIATE``**: writers queue for the lock
      instead of failing on lock upgrade, and never block readers.
    - **A point read is one autocommit SELECT** (its own consistent snapshot, no BEGIN or ROLLBACK)
      on a pooled connection kept for point reads, compiled once per statement: SQLAlchemy's
      execution path costs ~40 µs around a ~4 µs SQLite read (bench/NOTES.md).
    - **Values are converted by SQLAlchemy's own bind and result processors**, so these paths
      store and read exactly what SQLAlchemy's execution would (tests/integration/test_run_intake.py).
    - **Errors are SQLAlchemy's**: a failed statement raises ``DBAPIError.instance`` as SQLAlchemy's
      execution would, and a disconnect invalidates the pooled connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._reads: dict[Select[Any], _CompiledRead] = {}
        self._inserts: dict[tuple[Table, tuple[str, ...]], _CompiledInsert] = {}
        self._reader: PoolProxiedConnection | None = None  # the point reads' own connection
        # A read never awaits, so the lock is only ever contended by another thread's event loop
        # (tests, upgrade() inside a running loop), for the microseconds of a read.
        self.lock = threading.Lock()
        self._connected_once = False
        event.listen(engine.sync_engine, "connect", _on_connect)
        event.listen(engine.sync_engine, "begin", _on_begin)

    async def read_point(self, statement: Select[Any], parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row of ``statement`` with these named parameters, or None."""
        return await self._inline(self.read_point_sync, statement, parameters)

    def read_point_sync(self, statement: Select[Any], parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        compiled = self._reads.get(statement)
        if compiled is None:
            compiled = self._reads[statement] = _CompiledRead.of(statement, self._dialect)
        values = compiled.values(parameters)
        pooled = self._reader_connection()
        with self.lock:
            raw = pooled.dbapi_connection
            assert raw is not None
            try:
                # fetchall steps the statement to its end, so no read transaction stays open.
                found = raw.execute(compiled.sql, values).fetchall()
            except self._dialect.loaded_dbapi.Error as exc:
                if self._dialect.is_disconnect(exc, raw, None):
                    self._reader = None
                    pooled.invalidate(exc)
                    pooled.close()
                raise self._error(compiled.sql, values, exc) from exc
        return compiled.row(found[0]) if found else None

    def _reader_connection(self) -> PoolProxiedConnection:
        """The point reads' pooled connection, checked out once and kept: checking one out and back
        in per read (the pool's events and its reset) cost as much as the read. Checking it out may
        wait for a free connection (an await, in a greenlet): not under the lock."""
        reader = self._reader
        if reader is None:
            fresh = self._engine.sync_engine.raw_connection()
            with self.lock:
                reader = self._reader = self._reader or fresh
            if reader is not fresh:
                fresh.close()
        return reader

    async def _inline(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run ``call`` in the loop's thread, in a greenlet only when it must await."""
        if self._connected_once:
            try:
                return call(*args)
            except MissingGreenlet:
                pass  # every pooled connection is in use: wait for one, asynchronously
        # The pool's first connection runs SQLAlchemy's first-connect hooks, which await.
        result = await greenlet_spawn(call, *args)
        self._connected_once = True
        return result

    async def insert_rows(self, work: Rows) -> None:
        """Insert these rows (every row of a table with the same columns) in one transaction, on a
        pooled connection in a worker thread: waiting for the write lock blocks that thread, never
        the loop."""
        pooled = await self._inline(self._engine.sync_engine.raw_connection)
        try:
            await asyncio.to_thread(self._insert_rows_sync, pooled, work)
        finally:
            pooled.close()

    def _insert_rows_sync(self, pooled: PoolProxiedConnection, work: Rows) -> None:
        raw = pooled.dbapi_connection
        assert raw is not None
        statements = []
        for table, table_rows in work:
            columns = tuple(table_rows[0])
            compiled = self._inserts.get((table, columns))
            if compiled is None:
                compiled = self._inserts[(table, columns)] = _CompiledInsert.of(table, columns, self._dialect)
            statements.append((compiled.sql, [compiled.values(row) for row in table_rows]))
        begin_immediate_raw(raw, WRITE_TIMEOUT)  # raises SQLAlchemy's error itself
        sql = ""
        try:
            try:
                for sql, values in statements:
                    raw.executemany(sql, values)
                sql = "COMMIT"
                raw.execute(sql)
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        except self._dialect.loaded_dbapi.Error as exc:
            if self._dialect.is_disconnect(exc, raw, None):
                pooled.invalidate(exc)
            raise self._error(sql, None, exc) from exc

    def _error(self, sql: str, values: Any, exc: Exception) -> StatementError:
        """What SQLAlchemy's execution raises for a failed statement."""
        dbapi_error = self._dialect.loaded_dbapi.Error
        return DBAPIError.instance(sql, values, exc, dbapi_error, dialect=self._dialect)

    def close(self) -> None:
        """Give the point reads' connection back to the pool."""
        with self.lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's own is wrong).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL is a property of the file: switching needs the database to itself, so it is asked
    # for only when the file is not in WAL yet (a new database), never while others write.
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={STATEMENT_BUSY_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("flowdeck_write", False):
        begin_immediate(conn, WRITE_TIMEOUT)
    else:  # straight to the driver: a whole SQLAlchemy execution per read for one keyword
        begin_deferred(conn)


__all__ = ["DRIVER", "WRITE_TIMEOUT", "SQLiteInlineDialect", "SQLitePath", "register"]
