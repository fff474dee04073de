"""Per-step overhead of Toil on Slurm against the same run on ``single_machine``.

    .venv/bin/python bench/slurm_overhead.py            # 3 runs of each, medians reported
    .venv/bin/python bench/slurm_overhead.py --quick    # 1 run of each

The run is the test suite's two-step CWL workflow (greet, shout: two shell steps of a few
milliseconds) through the ``toil`` backend, as the worker drives it (submit, then sync every
0.2 s until the run ends). The cluster is a one-node Slurm on loopback from
``scripts/slurm/up.sh`` (needs root, slurm-wlm, munge). Time is from submit to the sync that
sees the end; the per-step overhead is the difference of the medians divided by two steps.
Both variants run with the sandbox off (a Slurm leader needs the network), and the slurm
variant's steps are counted in Slurm's job completion log.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.contract import contract
from tests.support.slurm import SlurmCluster, slurm_session

from flowdeck.backends.toil import ToilBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State, is_terminal
from flowdeck.settings import Settings

WORKFLOWS = Path(__file__).resolve().parents[1] / "tests" / "workflows" / "cwl"
STEPS = 2


def one_run(data: Path, run_id: str, settings: Settings) -> float:
    """Seconds from submit to the sync that reports the run's end."""
    folder = data / "runs" / run_id
    shutil.copytree(WORKFLOWS, folder / "attachments")
    spec = RunSpec(run_id, "CWL", "v1.2", "two_step.cwl", {"message": "bench"}, folder / "work", folder / "attachments")
    backend = ToilBackend(settings)
    started = time.monotonic()
    handle = contract.submit(backend, spec)
    while True:
        report = backend.sync([handle])[0]
        if report.state is not None and is_terminal(report.state):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert report.state is State.COMPLETE, report
    return elapsed


def measure(data: Path, cluster: SlurmCluster, repeat: int) -> dict[str, list[float]]:
    variants = {
        "single_machine": Settings(data_dir=data, sandbox=False),
        "slurm": Settings(data_dir=data, sandbox=False, toil_batch_system="slurm", slurm_conf=cluster.conf),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(repeat):
        for name, settings in variants.items():
            times[name].append(one_run(data, f"{name}-{i}", settings))
            print(f"{name} run {i + 1}: {times[name][-1]:.1f} s", flush=True)
    jobs = [job for job in cluster.finished() if job.get("Name", "").startswith("toil_job_")]
    assert len(jobs) == STEPS * repeat, jobs
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each")
    repeat = 1 if parser.parse_args().quick else 3
    data = Path(tempfile.mkdtemp(prefix="flowdeck-bench-slurm-"))
    try:
        with slurm_session() as cluster:
            times = measure(data, cluster, repeat)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    single, slurm = (statistics.median(times[name]) for name in ("single_machine", "slurm"))
    print(f"two-step run, median of {repeat}: single_machine {single:.1f} s, slurm {slurm:.1f} s")
    print(f"per-step overhead of Slurm: {(slurm - single) / STEPS:.1f} s")


if __name__ == "__main__":
    main()
