"""The description search on PostgreSQL at a million runs: pg_trgm index against the scan, and 0014's time.

    PYTHONPATH=src .venv/bin/python bench/description_pg.py [--runs 1000000]

A throwaway server (tests/support/postgres.py), migrated to 0013 and filled by one INSERT … SELECT
over generate_series with the descriptions bench/ui_pages.py --text searches; then migration 0014
is timed, then each needle's newest page of 100 (the query db/runs.py builds), median of a few,
with the index and without it (bitmap scans off: a GIN index serves only those, so the planner
falls back to what it did before 0014).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ui_pages import NEEDLES
from tests.support.postgres import PostgresServer

from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.domain.filters import RunFilter
from flowdeck.settings import Settings

REPEATS = 5
FILL = """
INSERT INTO runs (id, origin, workflow_type, workflow_type_version, workflow_url, workflow_params,
  workflow_engine_parameters, tags, attachments, backend, backend_data, state, state_version, system_logs,
  stored_bytes, created_at, updated_at, description)
SELECT 'r' || lpad(g::text, 7, '0'), 'wes', 'DEMO', '1.0', 'demo://x', '{}', '{}', '{}', '[]', 'demo', '{}',
  'COMPLETE', 0, '[]', 0, timestamptz '2026-01-01' + g * interval '1 second', now(),
  'RNA-seq sample S' || g || ' lane ' || (g % 8)
  || CASE WHEN g % 100000 = 0 THEN ' zebrafish' WHEN g % 100 = 0 THEN ' tumour' ELSE '' END
FROM generate_series(1, :n) AS g
"""


def _query(needle: str) -> sa.Select[tuple[object, ...]]:
    flt = RunFilter(description_contains=needle)
    return (
        sa.select(*run_rows.SUMMARY_COLUMNS)
        .where(*run_rows._where(flt, tags=False))
        .order_by(run_rows.runs.c.created_at.desc(), run_rows.runs.c.id.desc())
        .limit(100)
    )


def _uses_index(engine: sa.Engine, needle: str) -> bool:
    """Whether the planner picks the trigram index for this needle's page."""
    compiled = _query(needle).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN " + str(compiled)).scalars().all()
    return any("ix_runs_description_trgm" in line for line in plan)


def _page_ms(engine: sa.Engine, needle: str, indexed: bool) -> float:
    query = _query(needle)
    times = []
    for _ in range(REPEATS):
        with engine.begin() as conn:
            if not indexed:
                conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
            started = time.perf_counter()
            conn.execute(query).all()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, PostgresServer() as pg:
        url = pg.create_database()
        settings = Settings(database_url=url, data_dir=Path(work) / "data")
        upgrade(settings, "0013")
        engine = sa.create_engine(url)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"n": args.runs})
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE runs"))
        print(f"filled {args.runs} runs in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        upgrade(settings, "0014")
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE runs"))
            size = conn.execute(sa.text("SELECT pg_size_pretty(pg_relation_size('ix_runs_description_trgm'))"))
            print(f"migration 0014: {time.perf_counter() - started:.1f} s; index {size.scalar_one()}")
        print("| needle | scan (no index) | with the index | planner picks the index |\n|---|---|---|---|")
        for name, needle in NEEDLES.items():
            scan, index = _page_ms(engine, needle, False), _page_ms(engine, needle, True)
            print(f"| `{needle}` ({name}) | {scan:.1f} ms | {index:.1f} ms | {_uses_index(engine, needle)} |")
        engine.dispose()


if __name__ == "__main__":
    main()
