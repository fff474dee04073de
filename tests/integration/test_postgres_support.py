"""The throwaway PostgreSQL server that the suite starts (tests/support/postgres.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support import postgres
from tests.support.postgres import PostgresServer, shared_server

pytestmark = pytest.mark.postgres
Engines = list[AsyncEngine]


@pytest.fixture(scope="module")
def server() -> PostgresServer:
    return shared_server()


@pytest.fixture
async def engines() -> AsyncIterator[Engines]:
    made: Engines = []
    yield made
    for engine in made:
        await engine.dispose()


async def scalar(engine: AsyncEngine, sql: str) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def test_async_psycopg_query(server: PostgresServer, engines: Engines) -> None:
    engines.append(engine := create_async_engine(server.create_database()))
    assert engine.dialect.driver == "psycopg"
    assert str(await scalar(engine, "SELECT version()")).startswith("PostgreSQL 15")
    assert await scalar(engine, "SELECT 40 + 2") == 42


async def test_databases_are_independent(server: PostgresServer, engines: Engines) -> None:
    first, second = (create_async_engine(server.create_database()) for _ in range(2))
    engines += [first, second]
    async with first.begin() as conn:
        await conn.execute(text("CREATE TABLE runs (id int PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO runs VALUES (1), (2)"))
    assert await scalar(first, "SELECT count(*) FROM runs") == 2
    assert await scalar(second, "SELECT to_regclass('runs') IS NULL") is True


async def test_template_copies_stay_apart(server: PostgresServer, engines: Engines) -> None:
    def setup(url: str) -> None:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE pipelines (name text PRIMARY KEY)")
            conn.execute("INSERT INTO pipelines VALUES ('rnaseq')")

    server.create_template("support_template", setup)
    copies = (server.create_database(template="support_template") for _ in range(2))
    first, second = (create_async_engine(url) for url in copies)
    engines += [first, second]
    async with first.begin() as conn:
        await conn.execute(text("INSERT INTO pipelines VALUES ('gatk')"))
    assert await scalar(first, "SELECT count(*) FROM pipelines") == 2
    assert await scalar(second, "SELECT count(*) FROM pipelines") == 1


def test_server_is_local_fast_and_not_root(server: PostgresServer) -> None:
    settings = dict(server.execute("SELECT name, setting FROM pg_settings"))
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["fsync"] == "off"
    assert settings["unix_socket_directories"] == str(server.base_dir / "sockets")
    assert os.stat(server.base_dir / "data").st_uid != 0


def test_stop_ends_the_server_and_removes_its_files() -> None:
    with PostgresServer() as own:
        base, pid = own.base_dir, int((own.base_dir / "data/postmaster.pid").read_text().split()[0])
        own.create_database("kept_until_stop")
    assert not own.running
    assert not base.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "_bindir_candidates", list)
    with pytest.raises(postgres.PostgresNotInstalled, match="make install"):
        PostgresServer()


def test_failed_start_shows_the_log_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(postgres.SETTINGS, "no_such_setting", "1")
    own = PostgresServer()
    with pytest.raises(postgres.PostgresStartError, match="no_such_setting"):
        own.start()
    assert not own.running
    with pytest.raises(RuntimeError, match="not started"):
        own.base_dir  # noqa: B018
