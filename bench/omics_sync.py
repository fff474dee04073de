"""The omics sync benchmark (issue 19): one sync pass of the omics backend over N RUNNING
HealthOmics runs against the HealthOmics fake (tests/support/omics_fake.py), which answers every
call after a fixed latency, with S3 and CloudWatch Logs on moto's server.

    .venv/bin/python bench/omics_sync.py                      # 1,000 runs, 50 ms, concurrency 16
    .venv/bin/python bench/omics_sync.py --runs 200 --latency 0.05

What is timed is ``OmicsBackend.sync`` over all N handles, as the worker calls it with a claim's
runs (``parallel_sync``: at most ``sync_concurrency`` calls in flight): the backend and boto3, not
the database nor the CLI's start-up. Two passes:

* pass 1, *first sight*: every run is read (GetRun), its tasks listed, the ended first task read
  (GetRunTask) and its log copied from CloudWatch Logs (moto, no added latency);
* pass 2, *steady*: the runs are still RUNNING and their tasks were listed within
  ``omics_task_refresh_seconds``: one GetRun per run.

The target of the issue is 1.25 x N x latency / concurrency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.omics import PRIVATE_WORKFLOW, omics_fake, omics_settings

from flowdeck.backends.omics import OmicsBackend
from flowdeck.domain.runs import RunHandle, RunSpec
from flowdeck.domain.states import State
from flowdeck.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    # the first task ends at once; the second runs for an hour
    with omics_fake(timing={"pending": 0, "starting": 0, "task": 0.5}) as fake, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            **omics_settings(fake, Path(tmp), sync_concurrency=args.concurrency, omics_task_refresh_seconds=3600)
        )
        backend = OmicsBackend(settings)
        handles = [_start(backend, Path(tmp), i) for i in range(args.runs)]
        time.sleep(1.5)  # every run is RUNNING its second task
        fake.set_latency(args.latency)
        target = 1.25 * args.runs * args.latency / args.concurrency
        print(f"{args.runs} runs, {args.latency * 1000:.0f} ms a call, concurrency {args.concurrency}")
        print(f"target 1.25 x N x latency / concurrency = {target:.2f} s")
        handles = _pass(backend, handles, fake, "pass 1 (first sight)", target)
        _pass(backend, handles, fake, "pass 2 (steady)", target)


def _start(backend: OmicsBackend, tmp: Path, index: int) -> RunHandle:
    spec = RunSpec(
        run_id=f"bench-{index}",
        workflow_type="WDL",
        workflow_type_version="1.0",
        workflow_url=PRIVATE_WORKFLOW,
        workflow_params={"message": "bench", "sleep_seconds": 3600},
        workdir=tmp / "runs" / str(index),
        attachments_dir=tmp,
    )
    submitted = backend.submit(spec)
    return RunHandle(spec.run_id, submitted.backend_run_id, submitted.backend_data, spec.workdir, State.RUNNING)


def _pass(backend: OmicsBackend, handles: list[RunHandle], fake: object, label: str, target: float) -> list[RunHandle]:
    before = fake.state()["calls"]  # type: ignore[attr-defined]
    started = time.perf_counter()
    reports = backend.sync(handles)
    seconds = time.perf_counter() - started
    after = fake.state()["calls"]  # type: ignore[attr-defined]
    calls = {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}
    states = {str(r.state) for r in reports}
    print(f"{label}: {seconds:.2f} s ({seconds / target:.2f} x target), HealthOmics calls {calls}, states {states}")
    by_id = {r.run_id: r for r in reports}
    return [
        RunHandle(
            h.run_id, h.backend_run_id, {**h.backend_data, **(by_id[h.run_id].backend_data or {})}, h.workdir, h.state
        )
        for h in handles
    ]


if __name__ == "__main__":
    main()
