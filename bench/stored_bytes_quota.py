"""Issue 17's stored-bytes quota: what the submit-time check costs with 1,000,000 runs stored, against
summing the runs table for it, and what migration 0012's backfill costs, on a copy of one filled
SQLite database.

    .venv/bin/python bench/fill_runs.py /tmp/fill 1000000
    .venv/bin/python bench/stored_bytes_quota.py /tmp/fill --work /tmp/quota_bench

The copy is migrated to 0009; its runs are spread over 20 groups and every ended run is given a
results record (two outputs and a log, random sizes). Then timed: the upgrade to 0012 (its
backfill measures every record), and ROUNDS quota checks of one group (services.quotas.
check_stored_bytes: its kept deltas folded, as a worker leaves them, and again with up to
20,000 unfolded deltas, a busy minute's changes) against the same group's sum over the runs table.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import sqlalchemy as sa

ROUNDS = 200
GROUPS = 20
_RESULTS = (
    "json_object('files', json_array("
    "json_object('name', 'a.txt', 'key', 'k/a', 'size', abs(random()) % 1000000), "
    "json_object('name', 'b.txt', 'key', 'k/b', 'size', abs(random()) % 1000000)), "
    "'outputs', json_object(), "
    "'logs', json_object('run', json_object('stdout', json_object('key', 'k/o', 'size', abs(random()) % 10000)), "
    "'tasks', json_object()))"
)


def prepare(fill: Path, work: Path) -> None:
    from flowdeck.db.migrate import upgrade
    from flowdeck.settings import Settings

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("flowdeck.db", "storage-secret"):
        if (fill / name).exists():
            shutil.copyfile(fill / name, work / name)
    settings = Settings(data_dir=work, log_level="WARNING")
    upgrade(settings, "0009")
    engine = sa.create_engine(f"sqlite:///{work / 'flowdeck.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE runs SET research_group = 'g' || (rowid % {GROUPS})"))
        conn.execute(sa.text(f"UPDATE runs SET results = {_RESULTS} WHERE end_time IS NOT NULL"))
    engine.dispose()


async def _timed(rounds: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


async def measure(work: Path) -> None:
    from flowdeck.db import run_counts
    from flowdeck.db.tables import runs
    from flowdeck.services.core.context import AppContext
    from flowdeck.services.runs.quotas import check_stored_bytes
    from flowdeck.services.runs.run_counts import compact
    from flowdeck.settings import Settings

    settings = Settings(data_dir=work, log_level="WARNING", group_max_stored_bytes={"g0": 10**18})
    services = AppContext.create(settings)
    try:
        await compact(services)
        folded = await _timed(ROUNDS, lambda: check_stored_bytes(services, "g0"))
        async with services.db.write() as conn:  # up to 10,000 runs change: two deltas each (old out, new in)
            some = sa.select(runs.c.id).where(runs.c.research_group == "g0").limit(10_000).scalar_subquery()
            changed = await conn.execute(
                sa.update(runs).where(runs.c.id.in_(some)).values(stored_bytes=runs.c.stored_bytes + 1)
            )
        unfolded = await _timed(ROUNDS, lambda: check_stored_bytes(services, "g0"))

        async def summed() -> int:
            async with services.db.read() as conn:
                query = sa.select(sa.func.sum(runs.c.stored_bytes)).where(runs.c.research_group == "g0")
                return int((await conn.execute(query)).scalar_one())

        scan = await _timed(max(5, ROUNDS // 20), summed)
        async with services.db.read() as conn:
            assert await run_counts.group_bytes(conn, "g0") == await summed() > 0  # the kept count is true
    finally:
        await services.close()
    for label, (median, p90) in (
        ("check, deltas folded", folded),
        (f"check, {2 * changed.rowcount:,} deltas unfolded", unfolded),
        ("sum over the runs table", scan),
    ):
        print(f"{label}: median {median:.2f} ms, p90 {p90:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fill", type=Path, help="data dir filled by bench/fill_runs.py (left untouched)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/stored_bytes_bench"))
    args = parser.parse_args()
    from flowdeck.db.migrate import upgrade
    from flowdeck.settings import Settings

    prepare(args.fill, args.work)
    start = time.perf_counter()
    upgrade(Settings(data_dir=args.work, log_level="WARNING"))
    print(f"migration 0012 (backfill included): {time.perf_counter() - start:.1f} s")
    asyncio.run(measure(args.work))


if __name__ == "__main__":
    main()
