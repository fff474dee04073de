"""The migrations make exactly the schema db.tables describes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from flowdeck.db.migrate import downgrade, upgrade
from flowdeck.db.tables import UNMODELLED, metadata
from flowdeck.settings import Settings

# Only what db.tables describes is compared (UNMODELLED: migration 0014's trigram indexes).
_OPTS = {"include_name": lambda name, _type, _parents: name not in UNMODELLED}


async def _schema(settings: Settings) -> tuple[list[Any], list[str]]:
    """What autogenerate would change to match db.tables, and the tables there are."""
    engine = create_async_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: (
                    list(compare_metadata(MigrationContext.configure(sync, opts=_OPTS), metadata)),
                    sa.inspect(sync).get_table_names(),
                )
            )
    finally:
        await engine.dispose()


async def test_the_migrated_schema_is_the_one_the_code_uses(db_settings: Settings) -> None:
    differences, tables = await _schema(db_settings)
    assert differences == []
    assert "run_attachments" in tables


async def test_the_newest_migration_steps_back_and_forward(db_settings: Settings) -> None:
    await asyncio.to_thread(downgrade, db_settings, "0001")  # Alembic runs its own event loop
    differences, tables = await _schema(db_settings)
    assert "run_attachments" not in tables
    assert differences  # the code's schema has a table the database lacks now
    upgrade(db_settings)
    assert (await _schema(db_settings))[0] == []


async def test_0004_counts_the_runs_and_dates_the_tags_already_stored(db_settings: Settings) -> None:
    from flowdeck.db.tables import run_tags, runs
    from flowdeck.services.core.context import AppContext
    from tests.integration.test_run_state_counts import _submit, _truth

    services = AppContext.create(db_settings)
    try:
        for group in ("g1", "g1", "g2", None):
            await _submit(services, group, {"project": "p"})
        await asyncio.to_thread(downgrade, db_settings, "0003")
        await services.db.dispose()  # SQLite connections cache the dropped schema
        async with services.db.write() as conn:  # a run stored while no trigger counts it
            await conn.execute(sa.update(runs).where(runs.c.research_group == "g1").values(research_group="g2"))
        await asyncio.to_thread(upgrade, db_settings)
        await services.db.dispose()
        counted, kept = await _truth(services)
        assert counted == kept == {("g2", "QUEUED"): 3, ("", "QUEUED"): 1}
        async with services.db.read() as conn:
            dated = await conn.execute(
                sa.select(sa.func.count())
                .select_from(run_tags.join(runs, runs.c.id == run_tags.c.run_id))
                .where(run_tags.c.created_at == runs.c.created_at)
            )
            assert dated.scalar_one() == 4
    finally:
        await services.close()


def test_an_analysed_sqlite_database_gets_statistics_for_the_indexes_a_migration_adds(tmp_path: Any) -> None:
    """Where an operator ran ANALYZE, the index 0010 adds must not sit unmeasured beside measured
    ones (the planner then takes it for the narrowest: bench/NOTES.md); a database never analysed
    stays so."""
    from tests.conftest import make_settings

    analysed, plain = make_settings(tmp_path / "analysed"), make_settings(tmp_path / "plain")
    for settings in (analysed, plain):
        upgrade(settings, "0009")
    engine = sa.create_engine(analysed.resolved_database_url.replace("+aiosqlite", ""))
    try:
        with engine.begin() as conn:
            for i in range(20):  # ANALYZE records nothing for an empty table
                conn.exec_driver_sql(
                    "INSERT INTO runs (id, workflow_type, workflow_type_version, workflow_url, workflow_params,"
                    " workflow_engine_parameters, tags, attachments, backend, backend_data, state, system_logs,"
                    " created_at, updated_at) VALUES (?, 'DEMO', '1.0', 'demo://x', '{}', '{}', '{}', '[]', 'demo',"
                    " '{}', 'QUEUED', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                    (f"r{i}",),
                )
            conn.exec_driver_sql("ANALYZE")
        for settings in (analysed, plain):
            upgrade(settings)
        with engine.connect() as conn:
            indexes = {
                r[0]
                for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='runs'")
            }
            measured = {r[0] for r in conn.exec_driver_sql("SELECT idx FROM sqlite_stat1 WHERE tbl='runs'")}
        assert "ix_runs_cache_key_group_state_end_time" in indexes
        assert indexes <= measured
    finally:
        engine.dispose()
    plain_engine = sa.create_engine(plain.resolved_database_url.replace("+aiosqlite", ""))
    try:
        with plain_engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name='sqlite_stat1'").first() is None
    finally:
        plain_engine.dispose()
