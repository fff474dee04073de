"""What putting a run's results into storage adds to the end of a run (issue 17).

On main a run's terminal state is written as soon as the engine's last report is read; now the
worker first puts the run's output files and logs into storage (services.results.put). This
times that put for run folders laid out as an engine leaves them (outputs under ``work/``, a run
log pair, two log files per task), against local storage and against S3 (moto's server on
loopback, as the tests use), ``--reps`` times each; main's figure for the same step is zero.

    PYTHONPATH=src .venv/bin/python bench/outputs_put.py --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from flowdeck.backends.checksums import file_checksum
from flowdeck.services.core.storage import S3Storage, Storage, open_storage
from flowdeck.services.runs import results
from flowdeck.settings import Settings

# name: (output files, bytes each, tasks)
SHAPES = {
    "tiny CWL run (2 outputs, 2 tasks)": (2, 16, 2),
    "100 outputs of 100 KB, 20 tasks": (100, 100_000, 20),
    "1 output of 64 MB, 1 task": (1, 64_000_000, 1),
}


def lay_out(runs_dir: Path, run_id: str, files: int, size: int, tasks: int) -> tuple[Any, list[Any]]:
    work = runs_dir / run_id / "work"
    (work / "outputs").mkdir(parents=True)
    (work / "logs").mkdir()
    listed = []
    for i in range(files):
        path = work / "outputs" / f"out{i}.txt"
        path.write_bytes(os.urandom(size))
        listed.append(
            {"name": f"outputs/out{i}.txt", "location": str(path), "size": size, "checksum": file_checksum(path)}
        )
    for stream in ("stdout", "stderr"):
        (work / "logs" / f"run.{stream}").write_text("engine log line\n" * 200)
    task_rows = []
    for t in range(tasks):
        row = {"backend_task_id": f"step{t}"}
        for stream in ("stdout", "stderr"):
            (work / "logs" / f"step{t}.{stream}").write_text(f"step {t} {stream}\n" * 20)
            row[f"{stream}_path"] = str(work / "logs" / f"step{t}.{stream}")
        task_rows.append(row)
    run = SimpleNamespace(  # what results.put reads of a RunRecord
        outputs={f"o{i}": {"class": "File", "location": f"file://{f['location']}"} for i, f in enumerate(listed)},
        output_files=listed,
        stdout_path=str(work / "logs" / "run.stdout"),
        stderr_path=str(work / "logs" / "run.stderr"),
    )
    return run, task_rows


def measure(store: Storage, runs_dir: Path, shape: tuple[int, int, int], reps: int) -> list[float]:
    times = []
    for rep in range(reps):
        run_id = f"r{time.time_ns()}-{rep}"
        run, tasks = lay_out(runs_dir, run_id, *shape)
        started = time.perf_counter()
        results.put(store, runs_dir, run_id, run, tasks)
        times.append(time.perf_counter() - started)
    return times


def stores(tmp: Path) -> list[tuple[str, Storage]]:
    chosen: list[tuple[str, Storage]] = [("local", open_storage(Settings(data_dir=tmp / "data")))]
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return chosen
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = open_storage(
        Settings(data_dir=tmp / "data", storage="s3", s3_bucket="bench", s3_endpoint_url=f"http://{host}:{port}")
    )
    assert isinstance(s3, S3Storage)
    s3.client.create_bucket(Bucket="bench")
    chosen.append(("s3 (moto, loopback)", s3))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        print("| run | store | put at run end, median (min-max) | main |")
        print("|---|---|---|---|")
        for label, store in stores(tmp):
            for name, shape in SHAPES.items():
                times = measure(store, tmp / "runs", shape, args.reps)
                ms = [t * 1000 for t in times]
                print(f"| {name} | {label} | {statistics.median(ms):.1f} ms ({min(ms):.1f}-{max(ms):.1f}) | 0 |")


if __name__ == "__main__":
    main()
