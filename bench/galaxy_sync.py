"""The sync benchmark (issue 4): ``flowdeck sync --once`` over N RUNNING Galaxy runs against the
simulated Galaxy of bench/fake_galaxy.py, which answers every request after a fixed latency.

    .venv/bin/python bench/galaxy_sync.py                       # 10,000 runs, 50 ms, both modes
    .venv/bin/python bench/galaxy_sync.py --runs 2000 --modes per-invocation

For each mode (``per-invocation``: FLOWDECK_GALAXY_BATCH_LISTING=false, every invocation polled on
its own; ``batched``: the invocation listing and the multi-invocation job summaries) a fresh SQLite
database is filled and two passes are timed, each the real CLI in its own process:

* pass 1, *first sight*: flowdeck has never read these invocations, so every run is read in detail
  (invocation, jobs) and written (tasks, fingerprint);
* pass 2, *unchanged*: nothing moved in Galaxy since pass 1; a pass must cost only the polls and
  write nothing about any run.

Each pass reports its wall time (the whole process: start-up, migrations check, pass, exit), the
requests the fake Galaxy received and the most it served at once. The limit of the issue is
N x latency / concurrency (one request per run, every request slot always busy); a pass that needs
R requests cannot beat R x latency / concurrency, which is given as well.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BIN, ROOT, load_average
from bench.fake_galaxy import FakeGalaxy
from bench.fill_runs import stamp

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
    "backend_run_id",
    "backend_data",
    "state",
    "state_version",
    "system_logs",
    "created_at",
    "updated_at",
    "start_time",
    "last_progress_at",
    "check_failures",
)
MODES = {"per-invocation": "false", "batched": "true"}
# long, already running invocations: every one is "scheduled" with a running and a queued job for
# the whole benchmark, so pass 2 sees exactly what pass 1 saw
RUN_SECONDS = (20_000.0, 40_000.0)
STARTED_AGO = 4_000.0
COMMAND = [str(BIN / "flowdeck"), "sync", "--once", "--sync-only"]


def fill(data_dir: Path, fake: FakeGalaxy) -> None:
    """A migrated database (flowdeck's own migrations) holding one RUNNING run per fake invocation."""
    upgrade(Settings(data_dir=data_dir))
    started = datetime.now(UTC) - timedelta(seconds=STARTED_AGO)
    rows = []
    for inv in fake.invocations:
        data = {
            "galaxy_url": fake.url,
            "history_id": inv.history_id,
            "invocation_id": inv.id,
            "workflow_id": "0000000000000001",
            "workflow_name": "flowdeck_sort_upper",
            "invocation_state": "scheduled",
        }
        rows.append(
            (
                str(uuid.UUID(int=inv.index + 1, version=4)),
                "wes",
                "GALAXY",
                "gxformat2",
                "flowdeck_sort_upper",
                "{}",
                "galaxy",
                "{}",
                "{}",
                "[]",
                "galaxy",
                inv.id,
                json.dumps(data),
                "RUNNING",
                2,
                "[]",
                stamp(started),
                stamp(started),
                stamp(started),
                stamp(started),
                0,
            )
        )
    conn = sqlite3.connect(data_dir / "flowdeck.db", isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def digest(data_dir: Path) -> dict[str, object]:
    """What a pass may have written about runs: states, documents, tasks, events (not leases)."""
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        runs = conn.execute(
            "SELECT id, state, state_version, backend_data, system_logs, outputs, error_message, updated_at,"
            " last_progress_at, check_failures FROM runs ORDER BY id"
        ).fetchall()
        tasks = conn.execute("SELECT id, state, updated_at, system_logs FROM tasks ORDER BY id").fetchall()
        states = dict(conn.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return {
        "runs": hashlib.sha256(repr(runs).encode()).hexdigest(),
        "tasks": hashlib.sha256(repr(tasks).encode()).hexdigest(),
        "task_rows": len(tasks),
        "events": events,
        "states": states,
    }


@dataclass
class Pass:
    mode: str
    name: str
    seconds: float
    requests: Counter[str]
    max_in_flight: int
    wrote: bool
    states: dict[str, int]
    output: str

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def sync_once(fake: FakeGalaxy, env: dict[str, str], data_dir: Path, mode: str, name: str) -> Pass:
    before = digest(data_dir)
    fake.reset_counts()
    started = time.perf_counter()
    done = subprocess.run(COMMAND, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"flowdeck sync failed ({done.returncode}):\n{done.stderr[-4000:]}")
    after = digest(data_dir)
    wrote = any(before[key] != after[key] for key in ("runs", "tasks", "events"))
    return Pass(
        mode, name, seconds, Counter(fake.requests), fake.max_in_flight, wrote, after["states"], done.stdout.strip()
    )  # type: ignore[arg-type]


def environment(data_dir: Path, fake: FakeGalaxy, batch_listing: str, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(data_dir),
            "FLOWDECK_BACKENDS": "galaxy",
            "FLOWDECK_LOG_LEVEL": "WARNING",
            "FLOWDECK_GALAXY_URL": fake.url,
            "FLOWDECK_GALAXY_API_KEY": fake.api_key,
            "FLOWDECK_SYNC_CONCURRENCY": str(concurrency),
            "FLOWDECK_GALAXY_BATCH_LISTING": batch_listing,
        }
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="FLOWDECK_SYNC_CONCURRENCY (default: its default, 16)"
    )
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=list(MODES))
    args = parser.parse_args()
    loads = [load_average()]
    passes: list[Pass] = []
    fake = FakeGalaxy(
        invocations=args.runs,
        latency=args.latency,
        min_seconds=RUN_SECONDS[0],
        max_seconds=RUN_SECONDS[1],
        fail_share=0.0,
        started_ago=STARTED_AGO,
    )
    envs: dict[str, dict[str, str]] = {}
    with fake.running(), tempfile.TemporaryDirectory(prefix="flowdeck-galaxy-sync-") as tmp:
        for mode in args.modes:
            data_dir = Path(tmp) / mode
            fill(data_dir, fake)
            env = environment(data_dir, fake, MODES[mode], args.concurrency)
            envs[mode] = env
            for name in ("first sight", "unchanged"):
                done = sync_once(fake, env, data_dir, mode, name)
                passes.append(done)
                print(
                    f"{mode} / {name}: {done.seconds:.1f} s, {done.total} requests, "
                    f"at most {done.max_in_flight} at once; {done.output}",
                    file=sys.stderr,
                )
            loads.append(load_average())
    report(args, passes, envs, loads)


def report(args: argparse.Namespace, passes: list[Pass], envs: dict[str, dict[str, str]], loads: list[str]) -> None:
    n, latency, concurrency = args.runs, args.latency, args.concurrency
    limit = n * latency / concurrency
    print(
        f"### Galaxy sync pass: {n:,} RUNNING runs, {latency * 1000:.0f} ms per request, "
        f"sync concurrency {concurrency}\n"
    )
    print(
        f"Limit of the issue: N x latency / concurrency = {n:,} x {latency} s / {concurrency} = **{limit:.2f} s** "
        f"(target: per-invocation ≤ 1.25 x = {1.25 * limit:.2f} s, batched well below).\n"
    )
    print(
        "| mode | pass | wall time | ratio to limit | requests | requests / run | floor R x latency / conc. "
        "| ratio to floor | most at once | wrote about runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in passes:
        floor = p.total * latency / concurrency
        print(
            f"| {p.mode} | {p.name} | {p.seconds:.2f} s | {p.seconds / limit:.2f} | {p.total:,} | "
            f"{p.total / n:.2f} | {floor:.2f} s | {p.seconds / floor if floor else float('nan'):.2f} | "
            f"{p.max_in_flight} | {'yes' if p.wrote else 'no'} |"
        )
    print("\nRequests by path:\n")
    for p in passes:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(p.requests.items()))
        print(f"- {p.mode} / {p.name}: {kinds}")
    print("\nRun states after the passes: " + "; ".join(f"{p.mode}: {p.states}" for p in passes[1::2]))
    print(
        f"\nLoad average (1, 5, 15 min) before and after each mode: {' → '.join(loads)}; "
        f"{os.cpu_count()} cores, shared.\n"
    )
    print("Commands:\n\n```bash")
    print(
        f".venv/bin/python bench/galaxy_sync.py --runs {n} --latency {latency} --concurrency {concurrency} "
        f"--modes {' '.join(args.modes)}"
    )
    print("# each pass, as the script runs it (fake Galaxy on a free port, a fresh SQLite per mode):")
    for mode, env in envs.items():
        shown = {k: v for k, v in env.items() if k.startswith("FLOWDECK_") and k != "FLOWDECK_DATA_DIR"}
        print(
            " ".join(f"{k}={shlex.quote(v)}" for k, v in shown.items())
            + " FLOWDECK_DATA_DIR=… "
            + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(COMMAND))
            + f"  # {mode}"
        )
    print("```")


if __name__ == "__main__":
    main()
