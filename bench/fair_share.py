"""Issue 17's fair-share bench: what one dispatch claim costs with 1,000,000 runs stored, this
checkout against a baseline checkout, each on its own copy of one filled database.

    .venv/bin/python bench/fill_runs.py /tmp/fill 1000000
    .venv/bin/python bench/fair_share.py /tmp/fill --baseline-src /tmp/base/src --work /tmp/fair_bench

Each copy is migrated to its checkout's head, then given the flood: every queued run of the fill
(39,399 demo runs) goes to group ``a`` and 5 newer queued runs to group ``b``. A worker's claim
(services.claims.claim_dispatchable, demo backend, dispatch_batch 8) is then timed ROUNDS times in
one process, after the kept counts are compacted (as a worker does); each round claims fresh runs. Printed: median and p90 ms, and how many of b's runs the
first round claimed (fair share: at least half of the batch; first come, first served: none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROUNDS = 40


def prepare(data_dir: Path) -> None:
    """The flood: queued runs to group a, and 5 newer queued runs of group b (copies of one of a's)."""
    with sqlite3.connect(data_dir / "flowdeck.db") as db:
        db.execute("UPDATE runs SET research_group = 'a' WHERE state = 'QUEUED'")
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        row = dict(
            zip(columns, db.execute("SELECT * FROM runs WHERE state = 'QUEUED' LIMIT 1").fetchone(), strict=True)
        )
        newest = db.execute("SELECT max(created_at) FROM runs").fetchone()[0]
        for i in range(5):
            row.update(
                id=f"fair-share-b-{i}", research_group="b", created_at=newest, request_id=None, request_index=None
            )
            marks = ", ".join("?" for _ in columns)
            db.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({marks})", [row[c] for c in columns])


async def measure(data_dir: Path) -> dict[str, float]:
    from flowdeck.db.migrate import upgrade
    from flowdeck.services.core.context import AppContext
    from flowdeck.services.execution.claims import claim_dispatchable
    from flowdeck.services.runs.run_counts import compact
    from flowdeck.settings import Settings

    settings = Settings(data_dir=data_dir, backends=["demo"], dispatch_batch=8, log_level="WARNING")
    upgrade(settings)
    prepare(data_dir)
    services = AppContext.create(settings)
    await compact(services)  # as a worker does every few minutes: the kept counts are a few rows
    times, first_b = [], 0.0
    try:
        for i in range(ROUNDS):
            start = time.perf_counter()
            claimed = await claim_dispatchable(services, f"bench-{i}")
            times.append((time.perf_counter() - start) * 1000)
            if i == 0:
                first_b = sum(1 for row in claimed if _group(row) == "b")
    finally:
        await services.close()
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(len(times) * 0.9)], "b_in_first": first_b}


def _group(row: Any) -> Any:
    """A claimed run's group: a RunRecord here, a row mapping in a baseline from before it."""
    return row["research_group"] if isinstance(row, Mapping) else row.research_group


def run_side(fill: Path, work: Path, src: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    for name in ("flowdeck.db", "storage-secret"):
        if (fill / name).exists():
            shutil.copyfile(fill / name, work / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env["PYTHONPATH"] = f"{src}{os.pathsep}{Path(__file__).resolve().parents[1]}"
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(work)], env=env, check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fill", type=Path, help="data dir filled by bench/fill_runs.py (left untouched)")
    parser.add_argument("--baseline-src", type=Path, help="src folder of the checkout to compare with")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fair_share_bench"))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.fill))))
        return
    sides = {"this checkout": Path(__file__).resolve().parents[1] / "src"}
    if args.baseline_src:
        sides["baseline"] = args.baseline_src
    for label, src in sides.items():
        result = run_side(args.fill, args.work / label.replace(" ", "_"), src)
        print(
            f"{label}: claim median {result['median_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, "
            f"b's runs in the first claim {result['b_in_first']:.0f} of 8"
        )


if __name__ == "__main__":
    main()
