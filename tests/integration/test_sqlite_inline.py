"""The embedded SQLite driver runs statements in the event loop's thread: writers must wait for
the write lock without blocking the loop, and reads and migrations must work on a fresh engine."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from flowdeck.db import runs as run_rows
from flowdeck.db import sqlite_inline
from flowdeck.db.engine import Database, PointRead
from flowdeck.db.migrate import upgrade, upgrade_in_child
from flowdeck.errors import ConfigurationError, DatabaseUnavailable
from tests.conftest import make_settings


def _database(tmp_path: Path) -> Database:
    settings = make_settings(tmp_path)
    upgrade(settings)
    return Database(settings)


async def _count_events(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM events"))).scalar_one())


async def _add_event(db: Database, kind: str, hold: float = 0.0) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO events (at, kind) VALUES (CURRENT_TIMESTAMP, :k)"), {"k": kind})
        if hold:
            await asyncio.sleep(hold)  # the write lock is held across a real suspension


async def test_a_writer_waits_for_another_coroutine_of_the_same_loop(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:
        # With SQLite's own busy handler the second BEGIN IMMEDIATE would sleep the whole loop,
        # and the first writer, suspended in that loop, could never commit.
        await asyncio.wait_for(asyncio.gather(_add_event(db, "first", hold=0.3), _add_event(db, "second")), timeout=10)
        assert await _count_events(db) == 2
    finally:
        await db.dispose()


async def test_the_loop_keeps_running_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    db = _database(tmp_path)
    other = sqlite3.connect(tmp_path / "data" / "flowdeck.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        writer = asyncio.create_task(_add_event(db, "waiting"))
        await asyncio.sleep(0.5)
        assert not writer.done()
        assert ticks >= 10  # the loop was not blocked while the writer waited
        other.execute("COMMIT")
        await asyncio.wait_for(writer, timeout=10)
        ticker.cancel()
        assert await _count_events(db) == 1
    finally:
        other.close()
        await db.dispose()


async def test_a_writer_gives_up_after_the_write_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _database(tmp_path)
    other = sqlite3.connect(tmp_path / "data" / "flowdeck.db", isolation_level=None)
    monkeypatch.setattr(sqlite_inline, "WRITE_TIMEOUT", 0.2)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseUnavailable, match="locked") as raised:  # answered 503 with Retry-After
            await asyncio.wait_for(_add_event(db, "never"), timeout=10)
        assert isinstance(raised.value.__cause__, OperationalError)
        other.execute("ROLLBACK")
        await _add_event(db, "after")  # the pooled connection is usable again
        assert await _count_events(db) == 1
    finally:
        other.close()
        await db.dispose()


async def test_a_point_read_works_on_a_fresh_engine(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:
        # The first read opens the pool's first connection, which needs the async context.
        assert await db.read_point(run_rows.BY_ID, {"run_id": "no-such-run"}) is None
        row = await db.read_point(PointRead(sa.select(sa.literal_column("7").label("seven"))), {})
        assert row is not None
        assert dict(row) == {"seven": 7}
    finally:
        await db.dispose()


async def test_a_failed_write_rolls_back_and_releases_the_lock(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:

        async def failing_write() -> None:
            async with db.write() as conn:
                await conn.execute(sa.text("INSERT INTO events (at, kind) VALUES (CURRENT_TIMESTAMP, 'x')"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await failing_write()
        await asyncio.wait_for(_add_event(db, "next"), timeout=10)
        assert await _count_events(db) == 1
    finally:
        await db.dispose()


def test_migrations_in_a_child_report_their_failure(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError, match="database migration failed"):
        upgrade_in_child(settings)


def test_the_api_process_never_loads_alembic(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from flowdeck.db.migrate import upgrade_in_child\n"
        "from flowdeck.settings import Settings\n"
        f"upgrade_in_child(Settings(data_dir={str(tmp_path)!r}))\n"
        "from flowdeck.api.app import create_app\n"
        "print(sorted(m for m in ('alembic', 'mako', 'jwt') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "flowdeck.db").exists()
