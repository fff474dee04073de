"""Burst on two "hosts" (issue 17, benchmark 2): 20 tiny CWL runs with `flowdeck api` and `flowdeck
worker` as separate processes on PostgreSQL, outputs put to S3 (moto's server), against the same
burst on `flowdeck up` (SQLite, local storage); target ≤ 1.5x.

    PYTHONPATH=src .venv/bin/python bench/two_hosts.py             # 3 bursts of each, alternating
    PYTHONPATH=src .venv/bin/python bench/two_hosts.py --reps 1 --runs 5

Each burst starts its own servers (a fresh database, data folders, bucket), runs one warm-up run,
then submits the burst from 20 client threads (bench/engine_burst.py's client and clock: from just
before the first POST to the latest COMPLETE event). The API and the worker have data folders of
their own, as on two hosts; the cwltool backend, default settings otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.engine_burst import RUNS, cpu_seconds, wait_all
from bench.engine_single import events, wait_terminal
from tests.support.network import moto_s3, shared_store_env
from tests.support.postgres import PostgresServer
from tests.support.processes import stop

TARGET_RATIO = 1.5
BUCKET = "bench"


STAGES = (("QUEUED", "INITIALIZING"), ("INITIALIZING", "RUNNING"), ("RUNNING", "COMPLETE"))


Result = tuple[float, list[float], float]


def flowdeck_cpu(*pids: int) -> float:
    """CPU seconds so far of flowdeck's processes: each service process and the engines it launched
    (bench/engine_burst.py's reading)."""
    return sum(sum(cpu_seconds(pid)) for pid in pids)


def burst(url: str, runs: int, pids: tuple[int, ...]) -> Result:
    """Seconds from the first submit to the last COMPLETE, a run's median time in each of
    :data:`STAGES` (waiting for a slot and the claim; the engine's start; the engine and the
    storing of its results), and the CPU seconds of ``pids`` and their engines during the burst."""
    warm = common.submit_echo_cwl(url, "warm-up")
    if wait_terminal(url, warm) != "COMPLETE":
        raise RuntimeError(f"warm-up run {warm} did not complete")
    time.sleep(1.0)
    cpu_before = flowdeck_cpu(*pids)
    with ThreadPoolExecutor(runs) as pool:
        started = time.time()
        run_ids = list(pool.map(lambda n: common.submit_echo_cwl(url, f"burst {n}"), range(runs)))
        states = wait_all(url, run_ids)
    cpu = flowdeck_cpu(*pids) - cpu_before
    if set(states.values()) != {"COMPLETE"}:
        raise RuntimeError(f"runs did not complete: {states}")
    times = [events(url, run_id) for run_id in run_ids]
    stages = [statistics.median(t[end] - t[begin] for t in times) for begin, end in STAGES]
    return max(t["COMPLETE"] for t in times) - started, stages, cpu


def on_one_host(work: Path, runs: int) -> Result:
    with common.flowdeck_up(work / "data") as server:
        return burst(server.url, runs, (server.pid,))


@contextmanager
def two_hosts(work: Path, database_url: str, s3_url: str) -> Iterator[tuple[str, tuple[int, int]]]:
    """`flowdeck api` (folder api/) and `flowdeck worker` (folder worker/) on PostgreSQL and S3;
    yields the API's URL and the two processes' ids."""
    port = common.free_port()
    env = common.flowdeck_env(work / "api", port)
    env.update(
        {
            "FLOWDECK_BACKENDS": "cwltool",
            **shared_store_env(database_url, s3_url, BUCKET),
        }
    )
    with common.serve([str(common.BIN / "flowdeck"), "api"], env, port, common.WES + "/service-info") as api:
        worker_env = {**env, "FLOWDECK_DATA_DIR": str(work / "worker")}
        worker = subprocess.Popen([str(common.BIN / "flowdeck"), "worker"], env=worker_env, cwd=common.ROOT)
        try:
            yield api.url, (api.pid, worker.pid)
        finally:
            stop(worker)


def on_two_hosts(work: Path, pg: PostgresServer, s3_url: str, runs: int) -> Result:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    try:
        with two_hosts(work, pg.create_database(), s3_url) as (url, pids):
            return burst(url, runs, pids)
    finally:
        for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        s3.delete_bucket(Bucket=BUCKET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    load_before = common.load_average()
    results: dict[str, list[Result]] = {"up": [], "two": []}
    with (
        tempfile.TemporaryDirectory(prefix="flowdeck-bench-two-hosts-") as tmp,
        PostgresServer() as pg,
        moto_s3() as s3,
    ):
        for rep in range(args.reps):
            # Alternating, so a change in the machine's load falls on both alike.
            results["up"].append(on_one_host(Path(tmp) / f"up-{rep}", args.runs))
            results["two"].append(on_two_hosts(Path(tmp) / f"two-{rep}", pg, s3, args.runs))
            print(
                f"burst {rep + 1}: up {results['up'][-1][0]:.2f} s, two hosts {results['two'][-1][0]:.2f} s",
                file=sys.stderr,
            )
    print(report(results, args, load_before))


def report(results: dict[str, list[Result]], args: argparse.Namespace, load_before: str) -> str:
    up, two = (common.median([r[0] for r in results[k]]) for k in ("up", "two"))
    ratio = two / up
    rows = [
        (label, key)
        for label, key in (
            ("`flowdeck up`, SQLite, local storage", "up"),
            ("api + worker, PostgreSQL, S3 (moto)", "two"),
        )
    ]
    command = " ".join(["PYTHONPATH=src .venv/bin/python", "bench/two_hosts.py", *sys.argv[1:]])
    lines = [
        f"## Two hosts: a burst of {args.runs} tiny CWL runs, API and worker apart on PostgreSQL + S3 vs `flowdeck up`",
        "",
        f"Command: `{command}`; {args.reps} burst(s) of each, alternating, medians; load average {load_before} "
        f"before, {common.load_average()} after; {os.cpu_count()} cores shared with other work.",
        "",
        "| | first submit → last COMPLETE, s (median) | all bursts | a run's median s "
        + " / ".join(f"{b} → {e}" for b, e in STAGES)
        + " | CPU of flowdeck's processes and engines, s (median) |",
        "|---|---|---|---|---|",
    ]
    for label, key in rows:
        values = results[key]
        lines.append(
            f"| {label} | **{common.median([v[0] for v in values]):.2f}** | {', '.join(f'{v[0]:.2f}' for v in values)} "
            f"| {' / '.join(f'{common.median([v[1][i] for v in values]):.2f}' for i in range(len(STAGES)))} "
            f"| {common.median([v[2] for v in values]):.2f} |"
        )
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    lines += ["", f"Ratio two hosts / up: **{ratio:.2f}x** (target ≤ {TARGET_RATIO}x: {verdict}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
