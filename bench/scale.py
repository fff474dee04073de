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
import re
import signal
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
def _server(data_dir: Path, src: Path | None, env: dict[str, str]) -> Iterator[common.Server]:
    changes = {**env, **({"PYTHONPATH": str(src)} if src is not None else {})}
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        with common.flowdeck_server(data_dir) as server:
            yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def measure(data_dir: Path, src: Path | None, env: dict[str, str], *, flood_only: bool) -> dict[str, float]:
    """p50 of each aggregate and filter (unless ``flood_only``), the status p99 alone and under a
    list flood (ms), and the flood's own lists per second."""
    figures: dict[str, float] = {}
    with _server(data_dir, src, env) as server:
        base = server.url
        with httpx.Client(base_url=base, timeout=300) as client:
            for path in [] if flood_only else AGGREGATES + FILTERS:
                figures[path] = _sequential_p50(client, path)
                print(f"{path}: {figures[path]:.2f} ms", flush=True)
        status = f"{base}{WES}/runs/{_run_id(base)}/status"
        common.hey(status, 400, STATUS_CONCURRENCY)
        figures["status p99 alone"] = common.hey(status, STATUS, STATUS_CONCURRENCY, timeout=120).p99_ms
        print(f"status p99 alone: {figures['status p99 alone']:.2f} ms", flush=True)
        flood = [
            subprocess.Popen(["hey", "-z", "600s", "-c", "1", base + path], stdout=subprocess.PIPE, text=True)
            for path in FILTERS
        ]
        try:
            figures["status p99 under a list flood"] = common.hey(
                status, STATUS, STATUS_CONCURRENCY, timeout=120
            ).p99_ms
        finally:
            figures["lists/s of the flood (not ms)"] = sum(_stop(process) for process in flood)
        print(f"status p99 under a list flood: {figures['status p99 under a list flood']:.2f} ms", flush=True)
    return figures


def _stop(process: subprocess.Popen[str]) -> float:
    """Requests per second of a ``hey -z`` stopped early (it prints its summary on SIGINT)."""
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(match.group(1)) if match else 0.0


def _count(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--baseline-src", type=Path, help="a baseline checkout's src/ (run with its code)")
    parser.add_argument("--baseline-data", type=Path, help="the baseline's database, filled by the same script")
    parser.add_argument(
        "--list-concurrency", type=int, nargs="*", default=[], help="measure this tree once per value given"
    )
    parser.add_argument("--flood-only", action="store_true", help="only the status p99 alone and under the flood")
    args = parser.parse_args()
    print(f"runs: {_count(args.data_dir):,}; load average {common.load_average()}", flush=True)
    columns: dict[str, dict[str, float]] = {}
    for value in args.list_concurrency or [None]:
        env = {} if value is None else {"FLOWDECK_LIST_CONCURRENCY": str(value)}
        name = "this tree" if value is None else f"this tree, list_concurrency={value}"
        columns[name] = measure(args.data_dir, None, env, flood_only=args.flood_only)
    if args.baseline_data:
        columns["baseline"] = measure(args.baseline_data, args.baseline_src, {}, flood_only=args.flood_only)
    print("| request | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in next(iter(columns.values())):
        cells = [f"{column[row]:.2f}" if row in column else "-" for column in columns.values()]
        print(f"| {row} | " + " | ".join(cells) + " |")
    print(f"load average after: {common.load_average()}")


if __name__ == "__main__":
    main()
