"""Run every benchmark of issue 2 and write bench/RESULTS.md.

    .venv/bin/python bench/run.py                 # all, 3 repetitions each, medians reported
    .venv/bin/python bench/run.py --only submit,status --reps 5
    .venv/bin/python bench/run.py --list-sizes 1000   # skip the million (it takes a minute to fill)

Servers run in their own processes on 127.0.0.1 (``flowdeck api`` and bench/bare_app.py, same uvicorn
settings); the load generator is ``hey``, another process. Figures on a shared machine are noisy:
each is the median of ``--reps`` runs, and the load average is recorded next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.fill_runs import fill
from bench.list_latency import measure_list

# hey splits -n evenly over its -c workers and drops the remainder: 512 = 32 per worker (issue 2 asks 500).
SUBMIT_RUNS = 512
SUBMIT_CONCURRENCY = 16
WARMUP = 32
STATUS_REQUESTS = 4800


@dataclass
class Report:
    """Markdown sections, in the order the benchmarks ran."""

    sections: list[str] = field(default_factory=list)

    def add(self, title: str, lines: list[str]) -> None:
        self.sections.append(f"## {title}\n\n" + "\n".join(lines) + "\n")
        print(self.sections[-1], flush=True)


class PeakRss:
    """Samples a process's VmRSS every 20 ms while a load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, common.read_memory(self.pid)["VmRSS"])
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _warm(url: str, body: Path, content_type: str) -> None:
    common.hey(url, WARMUP, SUBMIT_CONCURRENCY, body=body, content_type=content_type)


def bench_submit(reps: int, report: Report, work: Path) -> str | None:
    """Submit throughput and memory; returns a run id for the status benchmark."""
    body = work / "submit.multipart"
    content_type = common.multipart_body(body)
    flowdeck_rps, bare_rps, own_parser_rps = [], [], []
    idle, under_load, peak_hwm, stored, bare_idle = [], [], [], [], []
    run_id = None
    command = ""
    for rep in range(reps):
        data_dir = work / f"submit-{rep}"
        with common.flowdeck_server(data_dir) as server:
            time.sleep(1.0)
            idle.append(server.memory()["VmRSS"])
            url = server.url + common.WES + "/runs"
            _warm(url, body, content_type)
            with PeakRss(server.pid) as sampler:
                load = common.hey(url, SUBMIT_RUNS, SUBMIT_CONCURRENCY, body=body, content_type=content_type)
            under_load.append(sampler.peak)
            peak_hwm.append(server.memory()["VmHWM"])
            if load.statuses != {200: SUBMIT_RUNS}:
                raise RuntimeError(f"submit answered {load.statuses}")
            flowdeck_rps.append(load.requests_per_second)
            command = load.command
            run_id = httpx.get(server.url + common.WES + "/runs", params={"page_size": 1}).json()["runs"][0]["run_id"]
        stored.append(common.count_runs(data_dir))
        with common.bare_server() as bare:
            time.sleep(1.0)
            bare_idle.append(bare.memory()["VmRSS"])
            _warm(bare.url + "/runs", body, content_type)
            bare_load = common.hey(
                bare.url + "/runs", SUBMIT_RUNS, SUBMIT_CONCURRENCY, body=body, content_type=content_type
            )
            bare_rps.append(bare_load.requests_per_second)
            own_parser = common.hey(
                bare.url + "/runs/flowdeck-parser",
                SUBMIT_RUNS,
                SUBMIT_CONCURRENCY,
                body=body,
                content_type=content_type,
            )
            own_parser_rps.append(own_parser.requests_per_second)
    ratio = common.median(flowdeck_rps) / common.median(bare_rps)
    own_ratio = common.median(flowdeck_rps) / common.median(own_parser_rps)
    report.add(
        "1. Submit throughput (POST /ga4gh/wes/v1/runs, multipart)",
        [
            f"Load generator: `{command}` (a multipart WES submission with one small attachment, body in "
            f"bench/common.py multipart_body), after {WARMUP} warm-up requests; a fresh SQLite data dir per repetition.",
            "",
            "| | req/s (median) | all repetitions |",
            "|---|---|---|",
            f"| flowdeck api (SQLite, demo backend) | {common.median(flowdeck_rps):.0f} | {_join(flowdeck_rps)} |",
            f"| bare FastAPI endpoint reading the same form (Starlette's form parser) | {common.median(bare_rps):.0f} | {_join(bare_rps)} |",
            f"| **ratio** (target ≥ 0.7) | **{ratio:.2f}** {'met' if ratio >= 0.7 else 'MISSED'} | |",
            f"| for scale: bare endpoint reading the form with flowdeck's parser (flowdeck.api.multipart) | {common.median(own_parser_rps):.0f} | {_join(own_parser_rps)} |",
            f"| flowdeck / that | {own_ratio:.2f} | |",
            "",
            f"Durability: after each repetition the server was stopped and a count of the runs stored with their "
            f"attachment (bench/common.py count_runs) found {', '.join(str(n) for n in stored)} runs (= {WARMUP} warm-up + {SUBMIT_RUNS} measured: every "
            f"answered submission was committed, its attachment with it: docs/adr/0005-new-runs-in-one-commit.md).",
        ],
    )
    report.add(
        "4. Memory of the API process (/proc/PID/status)",
        [
            "| | MB (median) | all repetitions |",
            "|---|---|---|",
            f"| VmRSS idle, 1 s after start (target ≤ 80) | {common.median(idle):.1f} "
            f"{'met' if common.median(idle) <= 80 else 'MISSED'} | {_join(idle)} |",
            f"| VmRSS peak sampled every 20 ms under the submit load | {common.median(under_load):.1f} | {_join(under_load)} |",
            f"| VmHWM (peak RSS) after the submit load | {common.median(peak_hwm):.1f} | {_join(peak_hwm)} |",
            f"| for scale: the bare FastAPI process (bench/bare_app.py), idle | {common.median(bare_idle):.1f} | {_join(bare_idle)} |",
        ],
    )
    return run_id


def bench_status(reps: int, report: Report, work: Path) -> None:
    data_dir = work / "status"
    flowdeck_rps, bare_rps, p50s = [], [], []
    command = ""
    # Both servers up at once and measured in turns, so that a change in the machine's load
    # during the run weighs on both figures alike (an idle server costs nothing).
    with common.flowdeck_server(data_dir) as server, common.bare_server() as bare:
        form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://bench"}
        run_id = httpx.post(server.url + common.WES + "/runs", data=form).json()["run_id"]
        url = f"{server.url}{common.WES}/runs/{run_id}/status"
        common.hey(url, 480, SUBMIT_CONCURRENCY)
        common.hey(bare.url + "/status", 480, SUBMIT_CONCURRENCY)
        for _ in range(reps):
            load = common.hey(url, STATUS_REQUESTS, SUBMIT_CONCURRENCY)
            if load.statuses != {200: STATUS_REQUESTS}:
                raise RuntimeError(f"status answered {load.statuses}")
            flowdeck_rps.append(load.requests_per_second)
            p50s.append(load.p50_ms)
            command = load.command
            bare_rps.append(common.hey(bare.url + "/status", STATUS_REQUESTS, SUBMIT_CONCURRENCY).requests_per_second)
    ratio = common.median(flowdeck_rps) / common.median(bare_rps)
    report.add(
        "3. Status (GET /ga4gh/wes/v1/runs/{run_id}/status)",
        [
            f"Load generator: `{command}`, after 480 warm-up requests to each server; the two servers run side "
            "by side and are measured in turns (flowdeck, bare, flowdeck, ...).",
            "",
            "| | req/s (median) | all repetitions |",
            "|---|---|---|",
            f"| flowdeck api (SQLite) | {common.median(flowdeck_rps):.0f} (p50 {common.median(p50s):.1f} ms) | {_join(flowdeck_rps)} |",
            f"| bare FastAPI GET, constant body | {common.median(bare_rps):.0f} | {_join(bare_rps)} |",
            f"| **ratio** (target ≥ 0.8) | **{ratio:.2f}** {'met' if ratio >= 0.8 else 'MISSED'} | |",
        ],
    )


def bench_list(reps: int, report: Report, work: Path, sizes: list[int]) -> None:
    lines = [
        "Server time, measured in-process: the whole app (routing, auth, the keyset query, JSON) through "
        "httpx's ASGI transport, no socket, 300 sequential requests per repetition after 30 warm-up ones "
        "(bench/list_latency.py). The database was filled by bench/fill_runs.py (sqlite3 executemany "
        "into the migrated schema). 'deep page' follows a page token from the middle of the table.",
        "",
        "| runs stored | fill time | first page of 100, median ms | p95 ms | deep page, median ms | all repetitions (first page) |",
        "|---|---|---|---|---|---|",
    ]
    medians: dict[int, float] = {}
    for size in sizes:
        data_dir = work / f"list-{size}"
        seconds = fill(data_dir, size)
        results = [asyncio.run(measure_list(data_dir)) for _ in range(reps)]
        first = [r.first_ms for r in results]
        medians[size] = common.median(first)
        lines.append(
            f"| {size:,} | {seconds:.0f} s | {medians[size]:.2f} | {common.median([r.first_p95_ms for r in results]):.2f} "
            f"| {common.median([r.deep_ms for r in results]):.2f} | {_join(first, 2)} |"
        )
    if len(sizes) >= 2:
        small, big = medians[min(sizes)], medians[max(sizes)]
        lines += [
            "",
            f"Target at {max(sizes):,}: ≤ 5 ms → {big:.2f} ms {'met' if big <= 5 else 'MISSED'}; "
            f"≤ 1.3 x the {min(sizes):,} figure → {big / small:.2f}x {'met' if big <= 1.3 * small else 'MISSED'}.",
        ]
    report.add("2. List (GET /ga4gh/wes/v1/runs?page_size=100)", lines)


def _join(values: list[float], digits: int = 0) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="submit,list,status", help="comma-separated: submit, list, status")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--list-sizes", default="1000,1000000")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    report = Report()
    load_before = common.load_average()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-") as tmp:
        work = Path(tmp)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("submit", lambda: bench_submit(args.reps, report, work)),
            ("list", lambda: bench_list(args.reps, report, work, [int(s) for s in args.list_sizes.split(",")])),
            ("status", lambda: bench_status(args.reps, report, work)),
        ]
        for name, step in steps:
            if name in only:
                step()
    header = [
        "# flowdeck benchmarks",
        "",
        f"Made by `{' '.join(['.venv/bin/python', 'bench/run.py', *sys.argv[1:]])}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {time.monotonic() - started:.0f} s.",
        f"Machine: {platform.processor() or platform.machine()}, {_cores()} cores shared with other work "
        f"(load average {load_before} before, {common.load_average()} after); the load generator runs on the "
        "same cores as the server and competes with it. Python "
        f"{platform.python_version()}; every figure is the median of {args.reps} repetitions.",
        "What bounds the figures, and what was tried: bench/NOTES.md (written by hand).",
        "",
    ]
    args.output.write_text("\n".join(header) + "\n" + "\n".join(report.sections))
    print(f"wrote {args.output}")


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
