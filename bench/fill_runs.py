"""Fill a flowdeck SQLite database with N runs, fast: the migrated schema, then sqlite3 executemany.

    .venv/bin/python bench/fill_runs.py DATA_DIR 1000000

Runs are WES-shaped demo runs spread over the last year (newest first is the list order), in a mix
of states, a quarter of them tagged, over 20 pipelines;
one run is PAUSED, tagged project:one, of pipeline 'one' (the filters' one-match case). One transaction per 50,000 rows.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flowdeck.db.migrate import upgrade
from flowdeck.settings import Settings

COLUMNS = (
    "id",
    "origin",
    "workflow_type",
    "workflow_type_version",
    "workflow_url",
    "workflow_params",
    "workflow_engine",
    "workflow_engine_parameters",
    "tags",
    "attachments",
    "backend",
    "backend_data",
    "state",
    "state_version",
    "system_logs",
    "created_at",
    "updated_at",
    "start_time",
    "end_time",
    "check_failures",
    "pipeline_name",
    "research_group",
)
STATES = ["COMPLETE"] * 70 + ["EXECUTOR_ERROR"] * 15 + ["CANCELED"] * 5 + ["RUNNING"] * 6 + ["QUEUED"] * 4
BATCH = 50_000


def stamp(value: datetime) -> str:
    """How SQLAlchemy stores a UTC DateTime in SQLite."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def rows(count: int, seed: int = 0) -> Iterator[tuple[tuple[object, ...], list[tuple[str, str, str, str]]]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    params = json.dumps({"sample": "S1", "threads": 4})
    for i in range(count):
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = now - timedelta(seconds=(count - i) * 31_536_000 / count, microseconds=rng.randrange(1000))
        state = rng.choice(STATES)
        ended = state in ("COMPLETE", "EXECUTOR_ERROR", "CANCELED")
        tags = {"project": f"p{i % 40}"} if i % 4 == 0 else {}
        if i == count // 2:  # one run of its own, for the filters' one-match case
            tags, state = {"project": "one"}, "PAUSED"
        started = created + timedelta(seconds=5) if state != "QUEUED" else None
        row = (
            run_id,
            "wes",
            "DEMO",
            "1.0",
            "demo://bench",
            params,
            "demo",
            "{}",
            json.dumps(tags),
            "[]",
            "demo",
            '{"pipeline_target": {}, "dataset": null}',
            state,
            3 if ended else 1,
            "[]",
            stamp(created),
            stamp(created),
            stamp(started) if started else None,
            stamp(created + timedelta(seconds=60)) if ended else None,
            0,
            "one" if i == count // 2 else f"pipe{i % 20}",
            None,  # every group's runs: the local user sees them all
        )
        yield row, [(run_id, key, value, stamp(created)) for key, value in tags.items()]


def fill(data_dir: Path, count: int) -> float:
    """Migrate a fresh database in data_dir and insert ``count`` runs; returns the seconds it took."""
    settings = Settings(data_dir=data_dir)
    upgrade(settings)
    started = time.perf_counter()
    conn = sqlite3.connect(data_dir / "flowdeck.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    insert_run = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[object, ...]] = []
    tags: list[tuple[str, ...]] = []
    # Tags carry their run's created_at from migration 0004 on; the same script fills older schemas
    # (a baseline checkout) too.
    dated = any(column[1] == "created_at" for column in conn.execute("PRAGMA table_info(run_tags)"))
    insert_tag = f"INSERT INTO run_tags (run_id, key, value{', created_at' if dated else ''}) VALUES (?, ?, ?{', ?' if dated else ''})"
    for row, row_tags in rows(count):
        if not dated:
            row_tags = [tag[:3] for tag in row_tags]
        batch.append(row)
        tags.extend(row_tags)
        if len(batch) == BATCH:
            _flush(conn, insert_run, insert_tag, batch, tags)
    _flush(conn, insert_run, insert_tag, batch, tags)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'run_state_counts'").fetchone():
        _compact_counts(conn)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def _flush(
    conn: sqlite3.Connection,
    insert_run: str,
    insert_tag: str,
    batch: list[tuple[object, ...]],
    tags: list[tuple[str, ...]],
) -> None:
    conn.execute("BEGIN")
    conn.executemany(insert_run, batch)
    conn.executemany(insert_tag, tags)
    conn.execute("COMMIT")
    batch.clear()
    tags.clear()


def _compact_counts(conn: sqlite3.Connection) -> None:
    """Fold the count deltas the triggers appended (one per run) as a worker would (db.run_counts)."""
    conn.execute("BEGIN IMMEDIATE")
    sums = conn.execute(
        "SELECT research_group, pipeline_name, state, sum(n) FROM run_state_counts "
        "GROUP BY research_group, pipeline_name, state"
    ).fetchall()
    conn.execute("DELETE FROM run_state_counts")
    conn.executemany("INSERT INTO run_state_counts (research_group, pipeline_name, state, n) VALUES (?, ?, ?, ?)", sums)
    conn.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    seconds = fill(args.data_dir, args.count)
    print(f"{args.count} runs in {seconds:.1f} s ({args.count / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
