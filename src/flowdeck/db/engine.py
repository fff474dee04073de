"""The database handle: one async engine, with read and write transactions that
behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, Table, insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flowdeck.db import sqlite_inline
from flowdeck.errors import DatabaseUnavailable
from flowdeck.settings import Settings

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


class PointRead:
    """A read of at most one row by key, for hot paths (a status poll).

    Every value comes from a named ``bindparam`` that the caller supplies. On SQLite it runs
    on :class:`~flowdeck.db.sqlite_inline.SQLitePath`'s point-read path.
    """

    __slots__ = ("statement",)

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


class Database:
    """Owns the engine. ``read()`` and ``write()`` open one transaction each.

    On SQLite every statement goes through one :class:`~flowdeck.db.sqlite_inline.SQLitePath`
    (its invariants are in its docstring): a write transaction starts with ``BEGIN IMMEDIATE``
    so that two writers queue instead of failing on lock upgrade; reads use a deferred
    ``BEGIN`` and never block writers (WAL).
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
        self._sqlite = sqlite_inline.SQLitePath(self.engine) if self.is_sqlite else None
        self._aside_lock = threading.Lock()
        self._aside: _AsideLoops | None = None  # SQLite's list reads, off the caller's loop
        self._commit_listeners: list[Callable[[], None]] = []
        # The same pool, its connections tagged for the begin hook: setting the option on each
        # connection instead costs another greenlet switch and execution per write.
        self._write_engine = self.engine.execution_options(flowdeck_write=True)

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
        if self._sqlite is not None:
            return await self._sqlite.read_point(read.statement, parameters)
        async with self.read() as conn:
            row = (await conn.execute(read.statement, dict(parameters))).mappings().first()
        return None if row is None else dict(row)

    async def insert_rows(self, rows: Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]) -> None:
        """Insert these rows (every row of a table with the same columns) in one transaction.

        For the hot write path (new runs, several at once: services.group_commit). On SQLite
        the transaction runs in a worker thread (``SQLitePath.insert_rows``): SQLite's own work
        releases the GIL, so it overlaps the event loop's instead of adding to it. PostgreSQL
        runs the same inserts through SQLAlchemy (its work is in the server's processes already).
        """
        work = [(table, list(table_rows)) for table, table_rows in rows if table_rows]
        if self._sqlite is None:
            async with self.write() as conn:
                for table, table_rows in work:
                    await conn.execute(insert(table), table_rows)
            return
        async with self._reachable():
            await self._sqlite.insert_rows(work)
        self._committed()

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
        with self._aside_lock:
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
        if self._sqlite is not None:
            self._sqlite.close()
        with self._aside_lock:
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
