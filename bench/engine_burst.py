"""Burst: 20 tiny CWL runs submitted at once to ``flowdeck up``; time to the last COMPLETE and peak RSS.

    .venv/bin/python bench/engine_burst.py            # 3 repetitions, medians reported
    .venv/bin/python bench/engine_burst.py --quick    # 1 repetition

Each repetition starts its own ``flowdeck up`` (temp SQLite and data dir, the cwltool backend,
default settings otherwise: admission control lets ``max_local_runs`` = core count execute at once
and queues the rest), runs one warm-up run, then submits the burst from 20 threads over HTTP
(``POST /ga4gh/wes/v1/runs`` with the echo tool attached). The time is from just before the first
POST to the latest COMPLETE event the server recorded (``GET /jobs/{id}/events``, same clock).
Memory: the summed VmRSS of the service and every process below it (the warm cwltool server,
launchers, cwltool, the tools), read from /proc every 50 ms during the burst; the maximum is
reported. Forked processes count the pages they share with the warm server in each VmRSS, so the
sum overstates the memory actually used.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.engine_single import TERMINAL, events, wait_terminal

RUNS = 20
TARGET_SECONDS = 10.0
TARGET_MB = 600.0


def wait_all(url: str, run_ids: list[str], timeout: float = 600) -> dict[str, str]:
    """Final state of every run, read from one list page polled every 0.25 s."""
    deadline = time.monotonic() + timeout
    wanted = set(run_ids)
    while time.monotonic() < deadline:
        page = httpx.get(f"{url}{common.WES}/runs", params={"page_size": 100}, timeout=10).json()["runs"]
        states = {run["run_id"]: run["state"] for run in page if run["run_id"] in wanted}
        if len(states) == len(wanted) and set(states.values()) <= TERMINAL:
            return states
        time.sleep(0.25)
    raise RuntimeError(f"the burst did not end within {timeout} s")


def _times(pid: int) -> tuple[float, float]:
    """CPU seconds of a process itself and of the children it reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _warm_servers(pid: int) -> list[int]:
    """The service's warm servers (flowdeck.backends.local.warm_start): they fork and reap the launchers."""
    found = []
    # Children are listed by the thread that started them (a worker thread starts the server).
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"flowdeck.backends.local.warm_start" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of the service itself, and of its engines: the launchers it reaped (cold starts,
    with the engines they reaped) plus its warm servers and the launchers they reaped (warm starts)."""
    own, engines = _times(pid)
    for server in _warm_servers(pid):
        server_own, server_children = _times(server)
        engines += server_own + server_children
    return own, engines


def one_burst(work: Path, runs: int, extra_env: dict[str, str] | None = None) -> tuple[float, float, int, float, float]:
    """Seconds from the first submit to the last COMPLETE, peak tree RSS in MB, RSS samples taken,
    CPU seconds of the service itself and of its engines (launchers and all below them)."""
    with common.flowdeck_up(work / "data", extra_env=extra_env) as server:
        warm = common.submit_echo_cwl(server.url, "warm-up")
        if wait_terminal(server.url, warm) != "COMPLETE":
            raise RuntimeError(f"warm-up run {warm} did not complete")
        time.sleep(1.0)
        own_before, engines_before = cpu_seconds(server.pid)
        with common.PeakTreeRss(server.pid, 0.05) as rss, ThreadPoolExecutor(runs) as pool:
            started = time.time()
            run_ids = list(pool.map(lambda n: common.submit_echo_cwl(server.url, f"burst {n}"), range(runs)))
            states = wait_all(server.url, run_ids)
        failed = {run_id: state for run_id, state in states.items() if state != "COMPLETE"}
        if failed:
            raise RuntimeError(f"runs did not complete: {failed}")
        own, engines = cpu_seconds(server.pid)
        last = max(events(server.url, run_id)["COMPLETE"] for run_id in run_ids)
    return last - started, rss.peak, rss.samples, own - own_before, engines - engines_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--quick", action="store_true", help="1 repetition")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    load_before = common.load_average()
    seconds, peaks, own_cpu, engine_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-burst-") as tmp:
        for rep in range(reps):
            took, peak, samples, own, engines = one_burst(Path(tmp) / f"rep-{rep}", args.runs)
            seconds.append(took)
            peaks.append(peak)
            own_cpu.append(own)
            engine_cpu.append(engines)
            print(f"repetition {rep + 1}: {took:.2f} s, peak {peak:.0f} MB ({samples} samples)", file=sys.stderr)
    command = " ".join([".venv/bin/python", "bench/engine_burst.py", *sys.argv[1:]])
    time_median, peak_median = common.median(seconds), common.median(peaks)
    print(
        "\n".join(
            [
                f"## Burst: {args.runs} tiny CWL runs at once (cwltool backend)",
                "",
                f"Command: `{command}`; {reps} repetition(s), medians; load average {load_before} before, "
                f"{common.load_average()} after; {os.cpu_count()} cores shared with other work.",
                "`flowdeck up` (temp SQLite, cwltool backend, default settings: max_local_runs = core count), one warm-up "
                "run, then the burst from 20 client threads. Tool: `echo` with stdout captured (bench/common.py ECHO_CWL).",
                "",
                "| | median | all repetitions |",
                "|---|---|---|",
                f"| first submit → last COMPLETE, s (target ≤ {TARGET_SECONDS:.0f}) | **{time_median:.2f}** "
                f"{'met' if time_median <= TARGET_SECONDS else 'MISSED'} | {', '.join(f'{s:.2f}' for s in seconds)} |",
                f"| peak RSS of the service + its engine processes, MB (target ≤ {TARGET_MB:.0f}) | **{peak_median:.0f}** "
                f"{'met' if peak_median <= TARGET_MB else 'MISSED'} | {', '.join(f'{p:.0f}' for p in peaks)} |",
                f"| CPU of the service process (API + worker + status polling of this script), s | {common.median(own_cpu):.2f} "
                f"| {', '.join(f'{c:.2f}' for c in own_cpu)} |",
                f"| CPU of the engines (launchers, cwltool, echo), s; / 2 cores is the floor of the time above | "
                f"{common.median(engine_cpu):.2f} | {', '.join(f'{c:.2f}' for c in engine_cpu)} |",
                "",
            ]
        )
    )


if __name__ == "__main__":
    main()
