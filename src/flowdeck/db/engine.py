"""The database handle: one async engine, with read and write transactions that
behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Select, Table, event, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, MissingGreenlet, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from flowdeck.db import binds, sqlite_inline
from flowdeck.errors import DatabaseUnavailable
from flowdeck.settings import Settings

# How long a writer waits for SQLite's write lock before the request fails.
SQLITE_WRITE_TIMEOUT = 30.0
# AsyncConnection returns its connection to the pool in a shielded task, so a connection stays
# checked out a moment after its block ends; a pool smaller than the number of requests in
# flight would open and close a SQLite connection per request. They are cheap to keep.
SQLITE_POOL_SIZE = 32
# SQLite reads that may scan (Database.read_aside) run on this many loops of their own: a flood
# of slow lists queues there instead of taking every core from the loop that answers polls.
ASIDE_THREADS = 2
# MySQL/MariaDB errors that mean the server is out of reach or too busy: cannot connect (2002,
# 2003), connection lost (2006, 2013, 2055), too many connections (1040), a lock held past
# innodb_lock_wait_timeout (1205), a statement past max_statement_time (1969).
_MYSQL_OUTAGES = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1205, 1969})
_T = TypeVar("_T")
_RETRY = {"Retry-After": str(DatabaseUnavailable.retry_after_seconds)}
Processor = Callable[[Any], Any]
Binder = Callable[[Mapping[str, Any]], tuple[Any, ...]]


class PointRead:
    """A read of at most one row by key, for hot paths (a status poll).

    Every value comes from a named ``bindparam`` that the caller supplies. On SQLite the
    statement is compiled once per database and runs as one autocommit SELECT on a pooled
    DBAPI connection: SQLAlchemy's execution path costs ~40 µs around a ~4 µs SQLite read.
    """

    __slots__ = ("statement",)

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


def _binder(names: tuple[str, ...], processors: Sequence[Processor | None]) -> Binder:
    """The DBAPI parameters of a compiled statement from a mapping: each named value through its
    bind processor (KeyError for a missing one). Values are picked by one ``itemgetter`` and only
    those with a processor are converted: a generator over every column cost ~2 µs a runs row."""
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


@dataclass(frozen=True)
class _CompiledRead:
    """A point read's SQL for one dialect, with SQLAlchemy's own value conversions."""

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
            values=_binder(names, [bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds]),
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
    """An INSERT of some columns of a table for one dialect, with SQLAlchemy's value conversions
    (or equal, cheaper ones: db/binds.py)."""

    sql: str
    values: Binder  # the DBAPI parameters from a row's values

    @classmethod
    def of(cls, table: Table, columns: tuple[str, ...], dialect: Dialect) -> _CompiledInsert:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        names = tuple(compiled.positiontup or ())
        if set(names) != set(columns):  # a Python-side default SQLAlchemy would have computed
            raise ValueError(f"insert into {table.name} needs values for exactly {sorted(names)}")
        return cls(
            sql=compiled.string,
            values=_binder(names, [binds.bind_processor(table.c[n].type, dialect) for n in names]),
        )


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
        self.is_mysql = self.url.startswith(("mysql", "mariadb"))
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
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_pool_size,
                pool_pre_ping=True,
                pool_timeout=settings.database_connect_timeout_seconds,
                connect_args=_server_connect_args(settings, mysql=self.is_mysql),
            )
            if self.is_mysql:
                # PostgreSQL's default: no gap locks, so a claim or a compaction never blocks an append.
                kwargs.update(isolation_level="READ COMMITTED")
        # A hung server (frozen, or a network that drops packets) answers nothing at all, and a
        # server-side timeout cannot fire: the client gives the whole transaction up after this.
        self._deadline = (
            None
            if self.is_sqlite
            else settings.database_connect_timeout_seconds + settings.database_statement_timeout_seconds + 1
        )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._connected_once = False
        self._point_reads: dict[PointRead, _CompiledRead] = {}
        self._reader: PoolProxiedConnection | None = None  # SQLite point reads' own connection
        self._reader_lock = threading.Lock()
        self._inserts: dict[tuple[Table, tuple[str, ...]], _CompiledInsert] = {}
        self._aside: _AsideLoops | None = None  # SQLite's list reads, off the caller's loop
        self._commit_listeners: list[Callable[[], None]] = []
        # The same pool, its connections tagged for the begin hook: setting the option on each
        # connection instead costs another greenlet switch and execution per write.
        self._write_engine = self.engine.execution_options(flowdeck_write=True)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)

    def _reachable(self) -> _Reachable:
        """The one place where the driver failing to reach the database, or a database that does
        not answer in time, becomes :class:`DatabaseUnavailable` (around every transaction)."""
        return _Reachable(self)

    def _is_outage(self, exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, OperationalError):
            return False
        # SQLite's OperationalError is also a bad statement or a read-only file; only a lock
        # held past the busy timeout is the database being unavailable. PostgreSQL's is a failed
        # connection, a lost one, or a statement cancelled by statement_timeout.
        if self.is_mysql:  # its OperationalError is also a failed CHECK, or a deadlock
            code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
            return code in _MYSQL_OUTAGES
        return not self.is_sqlite or "locked" in str(exc.orig)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction."""
        async with self._reachable(), self.engine.connect() as conn, conn.begin():
            yield conn

    async def read_point(self, read: PointRead, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row of ``read`` with these parameters, or None.

        On SQLite one SELECT in autocommit mode is its own read transaction (a consistent
        snapshot; WAL readers never wait), so no BEGIN or ROLLBACK is sent. PostgreSQL runs it
        through SQLAlchemy in a read transaction.
        """
        if self.is_sqlite:
            return await self._inline(self._read_point_sync, read, parameters)
        async with self.read() as conn:
            row = (await conn.execute(read.statement, dict(parameters))).mappings().first()
        return None if row is None else dict(row)

    def _read_point_sync(self, read: PointRead, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        dialect = self.engine.dialect
        compiled = self._point_reads.get(read)
        if compiled is None:
            compiled = self._point_reads[read] = _CompiledRead.of(read.statement, dialect)
        values = compiled.values(parameters)
        pooled = self._reader_connection()
        # A read never awaits, so the lock is only ever contended by another thread's event
        # loop (tests, upgrade() inside a running loop), for the microseconds of a read.
        with self._reader_lock:
            raw = pooled.dbapi_connection
            assert raw is not None
            try:
                # fetchall steps the statement to its end, so no read transaction stays open.
                found = raw.execute(compiled.sql, values).fetchall()
            except dialect.loaded_dbapi.Error as exc:
                if dialect.is_disconnect(exc, raw, None):
                    self._reader = None
                    pooled.invalidate(exc)
                    pooled.close()
                # What SQLAlchemy's execution raises for a failed statement.
                raise DBAPIError.instance(
                    compiled.sql, values, exc, dialect.loaded_dbapi.Error, dialect=dialect
                ) from exc
        return compiled.row(found[0]) if found else None

    def _reader_connection(self) -> PoolProxiedConnection:
        """The SQLite point reads' own pooled connection, checked out once and kept: checking
        one out and back in per read (the pool's events and its reset) cost as much as the read.
        Checking it out may wait for a free connection (an await, in a greenlet): not under the lock."""
        reader = self._reader
        if reader is None:
            fresh = self.engine.sync_engine.raw_connection()
            with self._reader_lock:
                reader = self._reader = self._reader or fresh
            if reader is not fresh:
                fresh.close()
        return reader

    async def _inline(self, read: Callable[..., _T], *args: Any) -> _T:
        """Run a synchronous SQLite read in the loop's thread, in a greenlet only when it must await."""
        if self._connected_once:
            try:
                return read(*args)
            except MissingGreenlet:
                pass  # every pooled connection is in use: wait for one, asynchronously
        # The pool's first connection runs SQLAlchemy's first-connect hooks, which await.
        result = await greenlet_spawn(read, *args)
        self._connected_once = True
        return result

    async def insert_rows(self, rows: Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]) -> None:
        """Insert these rows (every row of a table with the same columns) in one transaction.

        For the hot write path (new runs, several at once: services.group_commit). On SQLite
        the statements are compiled once per column set and the transaction runs on a pooled
        connection in a worker thread: SQLite's own work (the inserts and the commit's WAL
        writes) releases the GIL, so it overlaps the event loop's instead of adding to it,
        and waiting for the write lock blocks that thread, never the loop. PostgreSQL runs the
        same inserts through SQLAlchemy (its work is in the server's processes already).
        """
        work = [(table, list(table_rows)) for table, table_rows in rows if table_rows]
        if not self.is_sqlite:
            async with self.write() as conn:
                for table, table_rows in work:
                    await conn.execute(insert(table), table_rows)
            return
        async with self._reachable():
            pooled = await self._inline(self.engine.sync_engine.raw_connection)
            try:
                await asyncio.to_thread(self._insert_rows_sync, pooled, work)
            finally:
                pooled.close()
        self._committed()

    def _insert_rows_sync(
        self, pooled: PoolProxiedConnection, work: list[tuple[Table, list[Mapping[str, Any]]]]
    ) -> None:
        dialect = self.engine.dialect
        raw = pooled.dbapi_connection
        assert raw is not None
        statements = []
        for table, table_rows in work:
            columns = tuple(table_rows[0])
            compiled = self._inserts.get((table, columns))
            if compiled is None:
                compiled = self._inserts[(table, columns)] = _CompiledInsert.of(table, columns, dialect)
            statements.append((compiled.sql, [compiled.values(row) for row in table_rows]))
        sqlite_inline.begin_immediate_raw(raw, SQLITE_WRITE_TIMEOUT)  # raises SQLAlchemy's error itself
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
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, raw, None):
                pooled.invalidate(exc)
            raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc

    async def read_aside(self, read: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """``read`` in a read transaction that cannot stall the caller's event loop: for reads
        that may walk an index (lists, totals).

        SQLite statements run in the calling thread (db/sqlite_inline.py), right for point
        reads of microseconds, not for a list. On SQLite ``read`` runs on one of this handle's
        own event loops, each in a thread of its own (SQLite releases the GIL while it steps);
        a flood of lists queues there. PostgreSQL's driver already waits without blocking the
        loop, so it reads in place.
        """

        async def transaction() -> _T:
            async with self.read() as conn:
                return await read(conn)

        if not self.is_sqlite:
            return await transaction()
        return await self._aside_loops().run(transaction())

    def _aside_loops(self) -> _AsideLoops:
        with self._reader_lock:
            if self._aside is None:
                self._aside = _AsideLoops(ASIDE_THREADS)
            return self._aside

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block ends without error."""
        async with self._reachable(), self._write_engine.connect() as conn, conn.begin():
            yield conn
        self._committed()

    def on_commit(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each write transaction of this handle commits (it must be
        quick and must not raise); returns the unsubscribe."""
        self._commit_listeners.append(listener)
        return lambda: self._commit_listeners.remove(listener)

    def _committed(self) -> None:
        for listener in self._commit_listeners:
            listener()

    async def dispose(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            aside, self._aside = self._aside, None
        if aside is not None:
            await asyncio.to_thread(aside.close)
        await self.engine.dispose()


def _server_connect_args(settings: Settings, *, mysql: bool) -> dict[str, Any]:
    """The driver's connect arguments for a database server: a connect and a statement timeout."""
    if not mysql:
        statement_ms = int(settings.database_statement_timeout_seconds * 1000)
        return {
            "connect_timeout": settings.database_connect_timeout_seconds,
            "options": f"-c statement_timeout={statement_ms}",
        }
    # MariaDB's max_statement_time (seconds); UTC sessions, so the server's NOW() agrees with ours.
    init = f"SET time_zone = '+00:00', max_statement_time = {settings.database_statement_timeout_seconds:g}"
    return {"connect_timeout": settings.database_connect_timeout_seconds, "charset": "utf8mb4", "init_command": init}


class _AsideLoops:
    """Event loops in threads of their own, taking coroutines in turn (Database.read_aside)."""

    def __init__(self, count: int) -> None:
        self._loops = [asyncio.new_event_loop() for _ in range(count)]
        self._threads = [
            threading.Thread(target=loop.run_forever, name=f"flowdeck-read-aside-{i}", daemon=True)
            for i, loop in enumerate(self._loops)
        ]
        for thread in self._threads:
            thread.start()
        self._turn = itertools.cycle(self._loops)

    async def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        # Cancelling the caller cancels the work in its loop (wrap_future chains cancellation).
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, next(self._turn)))

    def close(self) -> None:
        for loop, thread in zip(self._loops, self._threads, strict=True):
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


class _Reachable:
    """See :meth:`Database._reachable`. A class, not a generator: it wraps every transaction,
    and ``asynccontextmanager`` costs several times as much per use."""

    __slots__ = ("_db", "_fired", "_handle", "_task")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._fired = 0
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> None:
        if self._db._deadline is not None:
            self._task = asyncio.current_task()
            self._handle = asyncio.get_running_loop().call_later(self._db._deadline, self._give_up)

    def _give_up(self) -> None:
        # psycopg answers a first cancellation by asking the server to cancel the query and
        # waiting up to 10 s for it (a frozen server never answers); a second one makes it close
        # the connection at once.
        assert self._task is not None
        self._fired += 1
        self._task.cancel()
        if self._fired < 3:
            self._handle = asyncio.get_running_loop().call_later(0.2, self._give_up)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if exc is None:
            return
        if isinstance(exc, asyncio.CancelledError) and self._fired:
            assert self._task is not None
            for _ in range(self._fired):
                self._task.uncancel()
            raise DatabaseUnavailable(
                f"the database is unreachable: no answer within {self._db._deadline:g} s", headers=_RETRY
            ) from None
        if isinstance(exc, DBAPIError) and self._db._is_outage(exc):
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise DatabaseUnavailable(f"the database is unreachable: {reason}", headers=_RETRY) from exc


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
