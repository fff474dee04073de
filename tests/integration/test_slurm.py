"""Runs on a real Slurm cluster: Toil (``--batchSystem slurm``) runs each CWL step as a Slurm job.

The cluster is Debian's slurm-wlm started on loopback by ``scripts/slurm/up.sh`` (once for
this module). Each test reads Slurm's own records, never the engine's word: the job
completion log (every ended job, with its working directory) and ``squeue``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends import slurm
from flowdeck.backends.toil import ToilBackend
from flowdeck.domain.runs import RunHandle, RunSpec
from flowdeck.domain.states import State
from flowdeck.settings import Settings
from tests.contract import contract
from tests.support.slurm import SlurmCluster, slurm_session

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "tests" / "workflows" / "cwl"
TIMEOUT = 240
# The "worker" that is killed: submits, writes the handle, then syncs until it is killed.
WORKER = """
import json, sys, time
from pathlib import Path
from tests.integration.test_slurm import backend, spec
from tests.contract import contract
data, conf = Path(sys.argv[1]), sys.argv[2]
tool = backend(data, conf)
handle = contract.submit(tool, spec(data, "killed", {"message": "still here", "sleep_seconds": 20}))
Path(sys.argv[3]).write_text(json.dumps({"id": handle.backend_run_id, "data": handle.backend_data}))
while True:
    tool.sync([handle])
    time.sleep(0.5)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_session() as running:
        yield running


def backend(data: Path, conf: Path | str) -> ToilBackend:
    """The toil backend of a site whose steps run on Slurm (the sandbox's network ban would
    keep the leader from slurmctld: docs/cluster.md)."""
    settings = Settings(data_dir=data, sandbox=False, toil_batch_system="slurm", slurm_conf=Path(conf))
    return ToilBackend(settings)


def spec(data: Path, run_id: str, params: dict[str, Any]) -> RunSpec:
    folder = data / "runs" / run_id
    if not (folder / "attachments").exists():
        shutil.copytree(WORKFLOWS, folder / "attachments")
    return RunSpec(
        run_id=run_id,
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="two_step.cwl",
        workflow_params=params,
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def jobs_of(cluster: SlurmCluster, rundir: Path) -> list[dict[str, str]]:
    """The ended Slurm jobs that ran in the run's folder."""
    return [job for job in cluster.finished() if job.get("WorkDir", "").startswith(str(rundir.resolve()))]


def wait_for(check: Any, what: str, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def steps_ran_on_slurm(cluster: SlurmCluster, rundir: Path) -> None:
    jobs = jobs_of(cluster, rundir)
    steps = {job["Name"].split(".cwl.", 1)[1].split(".")[0] for job in jobs if job["JobState"] == "COMPLETED"}
    assert steps == {"greet", "shout"}, jobs


def test_a_two_step_cwl_run_completes_as_slurm_jobs(cluster: SlurmCluster, tmp_path: Path) -> None:
    tool = backend(tmp_path / "data", cluster.conf)
    run = spec(tmp_path / "data", "ok", {"message": "hello slurm"})
    report = contract.wait_done(tool, contract.submit(tool, run), TIMEOUT)
    assert report.state is State.COMPLETE, report
    shouted = [f for f in report.output_files or [] if f.name.endswith("shouted.txt")]
    assert Path(shouted[0].location).read_text() == "HELLO SLURM\n"
    steps_ran_on_slurm(cluster, run.workdir)
    # Each step's own stderr file, written on the Slurm node, is the task's stderr.
    tasks = {task.name: task for task in report.tasks or []}
    assert set(tasks) == {"greet", "shout"}
    for task in tasks.values():
        assert task.state is State.COMPLETE
        assert task.stderr_path, task
        assert task.stderr_path.endswith(f"{task.name}.err.txt"), task
        assert Path(task.stderr_path).is_file()


def test_a_cancel_leaves_no_job_in_squeue(cluster: SlurmCluster, tmp_path: Path) -> None:
    tool = backend(tmp_path / "data", cluster.conf)
    run = spec(tmp_path / "data", "cancel", {"message": "stop", "sleep_seconds": 300})
    handle = contract.submit(tool, run)
    wait_for(lambda: any("shout" in name for name in _queued_names(cluster, run.workdir)), "shout on Slurm")
    tool.cancel(handle)
    report = contract.wait_done(tool, handle, 120)
    assert report.state is State.CANCELED, report
    wait_for(lambda: not _queued_names(cluster, run.workdir), "an empty squeue", 30)
    assert cluster.queued() == []


def _queued_names(cluster: SlurmCluster, rundir: Path) -> list[str]:
    lines = cluster.command("squeue", "-h", "-o", "%j\t%Z").splitlines()
    root = str(rundir.resolve())
    return [name for name, _, workdir in (line.partition("\t") for line in lines) if workdir.startswith(root)]


def test_a_worker_killed_mid_run_is_followed_to_the_true_end(cluster: SlurmCluster, tmp_path: Path) -> None:
    data = tmp_path / "data"
    handle_file = tmp_path / "handle.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(data), str(cluster.conf), str(handle_file)], cwd=ROOT, env=env
    )
    try:
        rundir = data / "runs" / "killed" / "work"
        wait_for(lambda: any("shout" in n for n in _queued_names(cluster, rundir)), "shout on Slurm")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    saved = json.loads(handle_file.read_text())
    # The restarted worker: a new backend that has only what the database kept.
    handle = RunHandle("killed", saved["id"], saved["data"], rundir, State.RUNNING)
    report = contract.wait_done(backend(data, cluster.conf), handle, TIMEOUT)
    assert report.state is State.COMPLETE, report
    assert (rundir / "outputs" / "shouted.txt").read_text() == "STILL HERE\n"
    steps_ran_on_slurm(cluster, rundir)
    assert cluster.queued() == []


def test_a_slurm_that_does_not_answer_leaves_the_sweep_undone_without_failing(tmp_path: Path) -> None:
    broken = tmp_path / "slurm.conf"
    broken.write_text("NotAKey=1\n")  # squeue really fails at once (a missing file retries for 60 s)
    settings = Settings(data_dir=tmp_path, slurm_conf=broken)
    with pytest.raises(subprocess.CalledProcessError):
        slurm.run_jobs(settings, tmp_path)
    assert slurm.cancel_jobs(settings, tmp_path) == []
