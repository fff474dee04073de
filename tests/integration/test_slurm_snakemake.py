"""Snakemake on a real Slurm cluster (``snakemake_executor=slurm``): each job a Slurm job through
snakemake-executor-plugin-slurm, on a configless test cluster (``scripts/slurm/up.sh``
``SLURM_CONFIGLESS=1``): the plugin's in-job side drops ``SLURM_CONF``, and its ``srun`` finds
the config through slurmd's cache at ``/run/slurm/conf``. Slurm's own records are the judge:
the job completion log and ``squeue``. Also: Slurm with the sandbox on is refused at submit.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.snakemake import SnakemakeBackend
from flowdeck.backends.toil import ToilBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import ValidationFailed
from flowdeck.settings import Settings
from tests.contract import contract
from tests.support.slurm import SlurmCluster, slurm_session

TIMEOUT = 240
# The plugin's defaults suit a busy site (first status check after 40 s); a test cluster answers at once.
FAST = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]
SNAKEFILE = """rule all:
    input:
        "shouted.txt",


rule greet:
    output:
        "greeting.txt",
    params:
        message=config["message"],
        sleep=config.get("sleep_seconds", 0),
    shell:
        "sleep {params.sleep}; echo {params.message:q} > {output}; echo job=$SLURM_JOB_ID >> {output}"


rule shout:
    input:
        "greeting.txt",
    output:
        "shouted.txt",
    shell:
        "tr a-z A-Z < {input} > {output}; echo job=$SLURM_JOB_ID >> {output}"
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_session(configless=True) as running:
        yield running


def backend(data: Path, conf: Path | None, **overrides: Any) -> SnakemakeBackend:
    values: dict[str, Any] = {"data_dir": data, "sandbox": False, "snakemake_executor": "slurm"}
    settings = Settings(**values | {"slurm_conf": conf, "snakemake_extra_args": FAST} | overrides)
    return SnakemakeBackend(settings)


def spec(data: Path, run_id: str, params: dict[str, Any]) -> RunSpec:
    folder = data / "runs" / run_id
    (folder / "attachments").mkdir(parents=True, exist_ok=True)
    (folder / "attachments" / "Snakefile").write_text(SNAKEFILE)
    return RunSpec(
        run_id=run_id,
        workflow_type="SMK",
        workflow_type_version="9",
        workflow_url="Snakefile",
        workflow_params=params,
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def queued_in(cluster: SlurmCluster, rundir: Path) -> list[str]:
    lines = cluster.command("squeue", "-h", "-o", "%i\t%Z").splitlines()
    root = str(rundir.resolve())
    return [job for job, _, workdir in (line.partition("\t") for line in lines) if workdir.startswith(root)]


def wait_for(check: Any, what: str, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.engine
def test_a_snakemake_run_completes_as_slurm_jobs(cluster: SlurmCluster, tmp_path: Path) -> None:
    tool = backend(tmp_path / "data", cluster.conf)
    run = spec(tmp_path / "data", "ok", {"message": "hello slurm"})
    report = contract.wait_done(tool, contract.submit(tool, run), TIMEOUT)
    assert report.state is State.COMPLETE, report
    shouted = (run.workdir / "shouted.txt").read_text().splitlines()
    assert shouted[0] == "HELLO SLURM"
    # Both steps ran inside Slurm jobs that the cluster's completion log shows completed in the run folder.
    lines = [*shouted, *(run.workdir / "greeting.txt").read_text().splitlines()]
    ran_in = {line.removeprefix("job=") for line in lines if line.startswith("job=")}
    ran_in.discard("")
    completed = {
        job["JobId"]
        for job in cluster.finished()
        if job["JobState"] == "COMPLETED" and job.get("WorkDir", "").startswith(str(run.workdir.resolve()))
    }
    assert len(ran_in) == 2, shouted
    assert ran_in <= completed, (ran_in, completed)
    tasks = {task.name: task.state for task in report.tasks or []}
    assert tasks.get("greet") is State.COMPLETE, report.tasks
    assert tasks.get("shout") is State.COMPLETE, report.tasks


@pytest.mark.engine
def test_a_cancel_leaves_no_job_in_squeue(cluster: SlurmCluster, tmp_path: Path) -> None:
    tool = backend(tmp_path / "data", cluster.conf)
    run = spec(tmp_path / "data", "cancel", {"message": "stop", "sleep_seconds": 300})
    handle = contract.submit(tool, run)
    wait_for(lambda: queued_in(cluster, run.workdir), "greet on Slurm")
    tool.cancel(handle)
    report = contract.wait_done(tool, handle, 120)
    assert report.state is State.CANCELED, report
    wait_for(lambda: not queued_in(cluster, run.workdir), "an empty squeue", 30)
    assert cluster.queued() == []


SANDBOXED = "with the sandbox on, and a sandboxed engine has no network to reach slurmctld"


def test_snakemake_on_slurm_with_the_sandbox_on_is_refused_at_submit(tmp_path: Path) -> None:
    tool = backend(tmp_path / "data", None, sandbox=True)
    with pytest.raises(ValidationFailed, match=SANDBOXED):
        tool.validate(spec(tmp_path / "data", "sandboxed", {"message": "x"}))
    backend(tmp_path / "data", None).validate(spec(tmp_path / "data", "unsandboxed", {"message": "x"}))


def test_toil_on_slurm_with_the_sandbox_on_is_refused_at_submit(tmp_path: Path) -> None:
    run = spec(tmp_path / "data", "toil", {"message": "x"})
    shutil.copy(Path(__file__).parents[1] / "workflows" / "cwl" / "two_step.cwl", run.attachments_dir)
    run = replace(run, workflow_type="CWL", workflow_type_version="v1.2", workflow_url="two_step.cwl")
    tool = ToilBackend(Settings(data_dir=tmp_path / "data", toil_batch_system="slurm", sandbox=True))
    with pytest.raises(ValidationFailed, match=SANDBOXED):
        tool.validate(run)
