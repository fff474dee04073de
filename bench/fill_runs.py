"""Fill a flowdeck SQLite database with N runs, fast: the migrated schema, then sqlite3 executemany.

    .venv/bin/python bench/fill_runs.py DATA_DIR 1000000

Runs are WES-shaped demo runs spread over the last year (newest first is the list order), in a mix
of states, a quarter of them tagged. One transaction per 50,000 rows.
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
)
STATES = ["COMPLETE"] * 70 + ["EXECUTOR_ERROR"] * 15 + ["CANCELED"] * 5 + ["RUNNING"] * 6 + ["QUEUED"] * 4
BATCH = 50_000


def stamp(value: datetime) -> str:
    """How SQLAlchemy stores a UTC DateTime in SQLite."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def rows(count: int, seed: int = 0) -> Iterator[tuple[tuple[object, ...], list[tuple[str, str, str]]]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    params = json.dumps({"sample": "S1", "threads": 4})
    for i in range(count):
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = now - timedelta(seconds=(count - i) * 31_536_000 / count, microseconds=rng.randrange(1000))
        state = rng.choice(STATES)
        ended = state in ("COMPLETE", "EXECUTOR_ERROR", "CANCELED")
        tags = {"project": f"p{i % 40}"} if i % 4 == 0 else {}
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
        )
        yield row, [(run_id, key, value) for key, value in tags.items()]


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
    tags: list[tuple[str, str, str]] = []
    for row, row_tags in rows(count):
        batch.append(row)
        tags.extend(row_tags)
        if len(batch) == BATCH:
            _flush(conn, insert_run, batch, tags)
    _flush(conn, insert_run, batch, tags)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def _flush(
    conn: sqlite3.Connection, insert_run: str, batch: list[tuple[object, ...]], tags: list[tuple[str, str, str]]
) -> None:
    conn.execute("BEGIN")
    conn.executemany(insert_run, batch)
    conn.executemany("INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)", tags)
    conn.execute("COMMIT")
    batch.clear()
    tags.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    seconds = fill(args.data_dir, args.count)
    print(f"{args.count} runs in {seconds:.1f} s ({args.count / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
