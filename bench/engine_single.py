"""Single-run overhead: one tiny CWL run through ``flowdeck up`` minus bare cwltool on the same tool.

    .venv/bin/python bench/engine_single.py            # 5 repetitions of each, medians reported
    .venv/bin/python bench/engine_single.py --quick    # 3 repetitions

The service is ``flowdeck up`` in its own process (temp SQLite and data dir, the cwltool backend,
default settings otherwise), driven over HTTP: ``POST /ga4gh/wes/v1/runs`` with the echo tool
attached. The flowdeck figure is the server's own COMPLETE event time (``GET /jobs/{id}/events``,
same clock as this process) minus the moment just before the POST, so the client's status polling
adds nothing to it. Bare cwltool runs as a subprocess with the argv flowdeck gives it (taken from
the run's ``launch.json``), in a fresh folder each time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
TARGET_SECONDS = 0.3


def wait_terminal(url: str, run_id: str, timeout: float = 120, interval: float = 0.1) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = str(httpx.get(f"{url}{common.WES}/runs/{run_id}/status", timeout=10).json()["state"])
        if state in TERMINAL:
            return state
        time.sleep(interval)
    raise RuntimeError(f"run {run_id} did not end within {timeout} s")


def events(url: str, run_id: str) -> dict[str, float]:
    """Epoch seconds at which the run entered each state (server clock)."""
    body = httpx.get(f"{url}/jobs/{run_id}/events", timeout=10).json()
    return {e["to_state"]: datetime.fromisoformat(e["at"]).timestamp() for e in body["events"] if e.get("to_state")}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def control_records(data_dir: Path, run_id: str) -> dict[str, Any]:
    """The launcher's launch and exit records of a run (``runs/ID/work/.flowdeck``)."""
    control = data_dir.resolve() / "runs" / run_id / "work" / ".flowdeck"
    return {name: json.loads((control / f"{name}.json").read_text()) for name in ("launch", "exit")}


def bare_cwltool(argv: list[str], rundir: Path, work: Path, reps: int) -> list[float]:
    """Wall seconds of cwltool with flowdeck's argv, each time in a fresh copy of the run folder."""
    times = []
    for rep in range(reps):
        folder = work / f"bare-{rep}"
        for sub in ("outputs", "logs", "tmp", ".flowdeck"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(rundir / ".flowdeck" / "params.json", folder / ".flowdeck" / "params.json")
        words = [word.replace(str(rundir), str(folder)) for word in argv]
        env = {**os.environ, "TMPDIR": str(folder / "tmp")}
        started = time.monotonic()
        done = subprocess.run(
            words, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        times.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError(f"bare cwltool failed ({done.returncode}): {' '.join(words)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    load_before = common.load_average()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-single-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        with common.flowdeck_up(data_dir) as server:
            # One warm-up run: the first dispatch imports the backend's modules in the service.
            warm = common.submit_echo_cwl(server.url, "warm-up")
            if wait_terminal(server.url, warm) != "COMPLETE":
                raise RuntimeError(f"warm-up run {warm} did not complete")
            for rep in range(reps):
                time.sleep(1.0)  # let the worker go idle, as a first submission of the day finds it
                started = time.time()
                run_id = common.submit_echo_cwl(server.url, f"rep {rep}")
                state = wait_terminal(server.url, run_id)
                if state != "COMPLETE":
                    raise RuntimeError(f"run {run_id} ended {state}")
                at = events(server.url, run_id)
                records = control_records(data_dir, run_id)
                rows.append(
                    {
                        "total": at["COMPLETE"] - started,
                        "to_dispatch": at["INITIALIZING"] - started,
                        "to_launch": epoch(records["launch"]["launched_at"]) - started,
                        "engine": epoch(records["exit"]["ended_at"]) - epoch(records["launch"]["launched_at"]),
                        "exit_to_complete": at["COMPLETE"] - epoch(records["exit"]["ended_at"]),
                    }
                )
                print(
                    f"repetition {rep + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), file=sys.stderr
                )
            argv = records["launch"]["argv"]
            rundir = data_dir.resolve() / "runs" / run_id / "work"
            bare = bare_cwltool(argv, rundir, work, reps)
    bare_median = common.median(bare)
    totals = [row["total"] for row in rows]
    overheads = [total - bare_median for total in totals]
    overhead = common.median(overheads)
    command = " ".join([".venv/bin/python", "bench/engine_single.py", *sys.argv[1:]])

    def med(key: str) -> str:
        return f"{common.median([row[key] for row in rows]):.3f}"

    print(
        "\n".join(
            [
                "## Single-run overhead (one tiny CWL run, cwltool backend)",
                "",
                f"Command: `{command}`; {reps} repetitions each, medians; load average {load_before} before, "
                f"{common.load_average()} after; {os.cpu_count()} cores shared with other work.",
                "`flowdeck up` (temp SQLite, cwltool backend, default settings), one warm-up run first, the worker idle "
                "for 1 s before each submission. Tool: `echo` with stdout captured as the output (bench/common.py ECHO_CWL).",
                "",
                "| | seconds (median) | all repetitions |",
                "|---|---|---|",
                f"| submit → COMPLETE (server's COMPLETE event minus client time before the POST) | {common.median(totals):.3f} | {_join(totals)} |",
                f"| bare cwltool, same argv, subprocess | {bare_median:.3f} | {_join(bare)} |",
                f"| **overhead** (target ≤ {TARGET_SECONDS}) | **{overhead:.3f}** {'met' if overhead <= TARGET_SECONDS else 'MISSED'} | {_join(overheads)} |",
                "",
                "Where the flowdeck time goes (medians, seconds):",
                "",
                "| submit → INITIALIZING (dispatch) | submit → launcher started | launcher start → exit record (engine under the launcher) | exit record → COMPLETE |",
                "|---|---|---|---|",
                f"| {med('to_dispatch')} | {med('to_launch')} | {med('engine')} | {med('exit_to_complete')} |",
                "",
            ]
        )
    )
    shutil.rmtree(work, ignore_errors=True)


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
