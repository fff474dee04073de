"""Size and time of the RO-Crate of a run with many output files (issue 20).

A real cwltool run on ``flowdeck up`` writes ``--files`` small files into one Directory output
(each listed with its size and SHA-256 by the worker, as every output is); then
``GET /ga4gh/wes/v1/runs/{id}/ro-crate`` is read ``--reps`` times, streamed to disk. Reports
the crate's size, the time to the first byte and to the last, and the API's peak RSS.

    PYTHONPATH=src .venv/bin/python bench/ro_crate.py --files 1000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import WES, flowdeck_up

MANY_CWL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments:
  - mkdir many && for i in `seq $(inputs.count)`; do printf 'file %s\\n' $i > many/f$i.txt; done
inputs:
  count: int
outputs:
  many:
    type: Directory
    outputBinding: {glob: many}
"""


def run_many(url: str, count: int) -> str:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "many.cwl",
        "workflow_params": json.dumps({"count": count}),
    }
    files = {"workflow_attachment": ("many.cwl", MANY_CWL.encode(), "text/plain")}
    response = httpx.post(f"{url}{WES}/runs", data=form, files=files, timeout=60)
    response.raise_for_status()
    run_id = str(response.json()["run_id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}{WES}/runs/{run_id}/status", timeout=30).json()["state"]
        if state == "COMPLETE":
            return run_id
        if state in ("EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"):
            raise RuntimeError(f"run {run_id} ended {state}")
        time.sleep(0.5)
    raise RuntimeError(f"run {run_id} did not end")


def fetch_crate(url: str, run_id: str, target: Path) -> tuple[float, float]:
    """Seconds to the first byte and to the last, streaming the zip to ``target``."""
    started = time.monotonic()
    first = 0.0
    with httpx.stream("GET", f"{url}{WES}/runs/{run_id}/ro-crate", timeout=600) as response:
        response.raise_for_status()
        with target.open("wb") as out:
            for chunk in response.iter_bytes():
                first = first or time.monotonic() - started
                out.write(chunk)
    return first, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, flowdeck_up(Path(tmp) / "data", "cwltool") as server:
        run_id = run_many(server.url, args.files)
        listed = len(httpx.get(f"{server.url}{WES}/runs/{run_id}/outputs", timeout=60).json()["files"])
        before = server.memory()
        firsts, totals = [], []
        for rep in range(args.reps):
            first, total = fetch_crate(server.url, run_id, Path(tmp) / f"crate-{rep}.zip")
            firsts.append(first)
            totals.append(total)
        crate = Path(tmp) / "crate-0.zip"
        with zipfile.ZipFile(crate) as archive:
            members = len(archive.namelist())
            metadata = archive.getinfo("ro-crate-metadata.json").file_size
        size = crate.stat().st_size
        after = server.memory()
    print(f"outputs listed: {listed}; zip members: {members}; zip size: {size / 1024:.0f} KiB")
    print(f"ro-crate-metadata.json: {metadata / 1024:.0f} KiB")
    print(f"first byte: median {statistics.median(firsts):.2f} s ({', '.join(f'{t:.2f}' for t in firsts)})")
    print(f"whole crate: median {statistics.median(totals):.2f} s ({', '.join(f'{t:.2f}' for t in totals)})")
    print(f"API RSS: {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MB, peak {after['VmHWM']:.0f} MB")


if __name__ == "__main__":
    main()
