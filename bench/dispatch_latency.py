"""POST /runs → dispatched, with the worker in another process (issue 17, benchmark 1).

A throwaway PostgreSQL, then ``flowdeck api`` and ``flowdeck worker`` as separate processes
(demo backend, the worker's default 1 s poll; runs that stay RUNNING, checked once a minute, so the
worker is idle between submissions) for each source tree given: this tree's ``src``
and, with ``--baseline-src``, another checkout's (the previous main, which polls). Runs are
submitted one at a time, a random 0.2-0.6 s apart, so each finds the worker idle. Latency: from
just before the POST (and from its answer) to the ``at`` of the run's QUEUED → INITIALIZING event
(written by the worker in its claim's transaction; same clock).

    PYTHONPATH=src .venv/bin/python bench/dispatch_latency.py --runs 50 --baseline-src /tmp/main/src
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, WES, flowdeck_env, free_port, load_average, serve
from tests.support.postgres import PostgresServer

FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://dispatch"}


def measure(src: Path, database_url: str, data_dir: Path, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from each POST's start, and from its answer, to the run's claim (flowdeck from ``src``)."""
    port = free_port()
    env = {
        **flowdeck_env(data_dir, port),
        "PYTHONPATH": str(src),
        "FLOWDECK_DATABASE_URL": database_url,
        # Runs that stay RUNNING, checked once a minute: between submissions the worker is idle,
        # so what is measured is the wake-up and the claim, not a busy worker's round.
        "FLOWDECK_DEMO_MIN_SECONDS": "600",
        "FLOWDECK_DEMO_MAX_SECONDS": "600",
        "FLOWDECK_SYNC_MIN_SECONDS": "60",
    }
    api = [sys.executable, "-m", "flowdeck.cli.main", "api"]
    with serve(api, env, port, WES + "/service-info") as server:
        worker = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "worker"], env=env, cwd=ROOT)
        try:
            _wait_for_worker(database_url)
            time.sleep(1)  # past its first round: idle
            submitted = _submit(server.url, runs)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    dispatched = _event_times(database_url, "INITIALIZING")
    return (
        [dispatched[run_id] - started for run_id, (started, _) in submitted.items()],
        [dispatched[run_id] - answered for run_id, (_, answered) in submitted.items()],
    )


def _submit(url: str, runs: int) -> dict[str, tuple[float, float]]:
    submitted: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(runs):
            time.sleep(random.uniform(0.2, 0.6))
            started = time.time()
            answer = client.post(f"{WES}/runs", data=FORM)
            answer.raise_for_status()
            submitted[answer.json()["run_id"]] = (started, time.time())
        time.sleep(3)  # the last ones dispatched
    return submitted


def _wait_for_worker(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    deadline = time.monotonic() + 120
    with engine.connect() as conn:
        while not conn.execute(sa.text("SELECT count(*) FROM workers")).scalar_one():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            conn.rollback()
            time.sleep(0.1)
    engine.dispose()


def _event_times(database_url: str, state: str) -> dict[str, float]:
    engine = sa.create_engine(database_url)
    query = sa.text("SELECT run_id, at FROM events WHERE to_state = :state")
    with engine.connect() as conn:
        rows = conn.execute(query, {"state": state}).all()
    engine.dispose()
    return {row.run_id: row.at.timestamp() for row in rows}


def roundtrip_ms(database_url: str, count: int = 200) -> float:
    """Median time of ``SELECT 1`` from here: what one database round trip costs on the machine now."""
    engine = sa.create_engine(database_url)
    times = []
    with engine.connect() as conn:
        for _ in range(count):
            started = time.perf_counter()
            conn.execute(sa.text("SELECT 1")).scalar_one()
            times.append(time.perf_counter() - started)
            time.sleep(0.005)
    engine.dispose()
    return statistics.median(times) * 1000


def report(name: str, latencies: tuple[list[float], list[float]]) -> str:
    lines = []
    for what, values in zip(("POST sent", "POST answered"), latencies, strict=True):
        ms = sorted(value * 1000 for value in values)
        p90 = ms[int(len(ms) * 0.9) - 1]
        lines.append(f"from {what}: p50={statistics.median(ms):.1f} ms p90={p90:.1f} ms max={ms[-1]:.1f} ms")
    return f"{name}: runs={len(latencies[0])}; " + "; ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/ (the previous main)")
    args = parser.parse_args()
    trees = [("this tree", ROOT / "src")]
    if args.baseline_src:
        trees.append(("baseline", args.baseline_src.resolve()))
    print(f"load average before: {load_average()}")
    with PostgresServer() as pg:
        for name, src in trees:
            with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as data_dir:
                url = pg.create_database()
                print(report(name, measure(src, url, Path(data_dir), args.runs)), flush=True)
                print(f"  SELECT 1 round trip p50: {roundtrip_ms(url):.2f} ms", flush=True)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
