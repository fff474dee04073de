"""Issue 13's scale benchmark: aggregates, every list filter, and a status poll's p99 under a list
flood, against a real ``flowdeck api`` on a database filled by bench/fill_runs.py.

    .venv/bin/python bench/fill_runs.py /tmp/fill 1000000
    .venv/bin/python bench/scale.py /tmp/fill
    # side by side with a baseline checkout filled by the same script:
    .venv/bin/python bench/scale.py /tmp/fill --baseline-src /tmp/base/src --baseline-data /tmp/fill_base

Each figure is the median of 20 sequential requests on one keep-alive connection (3 when a request
takes over a second), so it is one request's server time plus the loopback round trip. The status p99 is measured alone, then while one hey
per list filter loops over it; the two servers are measured one after the other in one run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from bench import common

WES = "/ga4gh/wes/v1"
AGGREGATES = [f"{WES}/service-info", "/healthz", "/metrics"]
# zero, one and many matches each (bench/fill_runs.py's data: one PAUSED run of pipeline 'one'
# tagged project:one; project:p4 on 1/40 of the runs; 20 pipelines).
FILTERS = [
    f"{WES}/runs?tag=project:none",
    f"{WES}/runs?tag=project:one",
    f"{WES}/runs?tag=project:p4",
    f"{WES}/runs?state=PAUSED",
    f"{WES}/runs?state=RUNNING",
    f"{WES}/runs?state=COMPLETE",
    "/jobs?pipeline_name=nonexistent",
    "/jobs?pipeline_name=one",
    "/jobs?pipeline_name=pipe3",
    "/jobs?research_group=nobody",
    "/jobs?dataset_id=none",
    "/requests?state=failed",
]
SEQUENTIAL = 20
STATUS = 4000
STATUS_CONCURRENCY = 8


@contextmanager
def _server(data_dir: Path, src: Path | None) -> Iterator[common.Server]:
    saved = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    try:
        with common.flowdeck_server(data_dir) as server:
            yield server
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _sequential_p50(client: httpx.Client, path: str) -> float:
    """Median of sequential requests on one keep-alive connection (3 when one takes over a second)."""
    times = []
    for _ in range(SEQUENTIAL + 1):  # the first warms
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        if len(times) == 4 and min(times) > 1000:
            break
    return statistics.median(times[1:])


def _run_id(base: str) -> str:
    return str(httpx.get(f"{base}{WES}/runs", params={"page_size": 1}).json()["runs"][0]["run_id"])


def measure(data_dir: Path, src: Path | None) -> dict[str, float]:
    """p50 of each aggregate and filter, and the status p99 alone and under a list flood (ms)."""
    figures: dict[str, float] = {}
    with _server(data_dir, src) as server:
        base = server.url
        with httpx.Client(base_url=base, timeout=300) as client:
            for path in AGGREGATES + FILTERS:
                figures[path] = _sequential_p50(client, path)
                print(f"{path}: {figures[path]:.2f} ms", flush=True)
        status = f"{base}{WES}/runs/{_run_id(base)}/status"
        common.hey(status, 400, STATUS_CONCURRENCY)
        figures["status p99 alone"] = common.hey(status, STATUS, STATUS_CONCURRENCY, timeout=120).p99_ms
        print(f"status p99 alone: {figures['status p99 alone']:.2f} ms", flush=True)
        flood = [
            subprocess.Popen(["hey", "-z", "600s", "-c", "1", base + path], stdout=subprocess.DEVNULL)
            for path in FILTERS
        ]
        try:
            figures["status p99 under a list flood"] = common.hey(
                status, STATUS, STATUS_CONCURRENCY, timeout=120
            ).p99_ms
        finally:
            for process in flood:
                process.terminate()
                process.wait()
    return figures


def _count(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--baseline-src", type=Path, help="a baseline checkout's src/ (run with its code)")
    parser.add_argument("--baseline-data", type=Path, help="the baseline's database, filled by the same script")
    args = parser.parse_args()
    print(f"runs: {_count(args.data_dir):,}; load average {common.load_average()}", flush=True)
    this = measure(args.data_dir, None)
    baseline = measure(args.baseline_data, args.baseline_src) if args.baseline_data else {}
    print("| request | this tree | baseline |\n|---|---|---|")
    for name, value in this.items():
        other = f"{baseline[name]:.2f} ms" if name in baseline else "-"
        print(f"| {name} | {value:.2f} ms | {other} |")
    print(f"load average after: {common.load_average()}")


if __name__ == "__main__":
    main()
