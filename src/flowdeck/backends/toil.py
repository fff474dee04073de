"""The ``toil`` backend: CWL on toil-cwl-runner, one machine here, a cluster by configuration.

The batch system is ``settings.toil_batch_system`` (``single_machine`` by
default) and ``settings.toil_extra_args`` adds operator arguments: that is the
way past one machine (for example ``slurm`` with a job store and ``--workDir``
on a shared file system, or ``kubernetes``/``aws_batch`` with their options).
Users may only set the engine parameters below.

Run dir layout: ``js/`` (the ``file:`` job store: removed when the run succeeds, kept after a
failure or a cancel so that a rerun can resume from it, :mod:`flowdeck.backends.toil_resume`),
``outputs/``, ``logs/<job>/`` (a tool's declared stdout/stderr), ``joblogs/``
(``--writeLogs``: each job's worker log), ``tmp/`` (``--workDir`` and staging),
``.flowdeck/messages.tsv`` (``--writeMessages``, Toil's message bus: the task
states), ``.flowdeck/toil.log`` and ``home/`` (the engine's HOME: Toil writes its
``~/.toil/default.yaml`` there, not in the service account's home).

Toil's own history database (``~/.toil/history.sqlite``, every run of the
account) is turned off with ``TOIL_HISTORY=False``: flowdeck's database is the
record of runs, and a run must leave nothing outside its directory.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

from flowdeck.backends import slurm, toil_resume
from flowdeck.backends.cwltool import REDIRECT, CwlRunnerBackend
from flowdeck.backends.local.engine_options import Option, engine_args
from flowdeck.backends.local.launcher import LaunchPlan, control_dir, parse_time
from flowdeck.backends.local.run_files import file_time
from flowdeck.domain.runs import RunSpec, TaskInfo
from flowdeck.domain.states import State

_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4})\]")
_EXITED = re.compile(r"exited with status: (\d+)")


@dataclass
class _Job:
    job_type: str
    state: State = State.RUNNING
    exit_code: int | None = None
    streams: dict[str, str] = field(default_factory=dict)


def read_messages(path: Path) -> dict[str, _Job]:
    """CWL tool jobs by Toil job id, from the ``--writeMessages`` bus."""
    jobs: dict[str, _Job] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return jobs
    for line in lines:
        kind, *fields = line.split("\t")
        if len(fields) < 2 or not fields[1].startswith("kind-CWLJob/"):
            continue
        job_type, job_id = fields[0], fields[1]
        if kind.endswith("JobIssuedMessage"):
            jobs[job_id] = _Job(job_type)
        elif kind.endswith("JobCompletedMessage") and job_id in jobs:
            code = int(fields[2]) if len(fields) > 2 and fields[2].lstrip("-").isdigit() else 1
            jobs[job_id].state = State.COMPLETE if code == 0 else State.EXECUTOR_ERROR
            jobs[job_id].exit_code = code
        elif kind.endswith("JobFailedMessage") and job_id in jobs and jobs[job_id].state is not State.COMPLETE:
            # Toil also "fails" the finished predecessors of a failed job: those keep COMPLETE.
            jobs[job_id].state = State.EXECUTOR_ERROR
    return jobs


def step_name(job_type: str) -> str:
    """``two_step.cwl.greet._:uuid`` -> ``greet``."""
    name = job_type.split("._:", 1)[0]
    return re.sub(r"^.*?\.cwl\.", "", name)


def _job_log(joblogs: Path, job_type: str) -> Path | None:
    # Toil doubles every '-' of the job name in log file names; the last attempt wins.
    key = job_type.replace("-", "--")
    found = sorted(p for p in joblogs.glob("*.log") if key in p.name and "CWLJob_" in p.name)
    return found[-1] if found else None


def _task(job_id: str, job: _Job, rundir: Path) -> TaskInfo:
    log = _job_log(rundir / "joblogs", job.job_type)
    text = log.read_text(encoding="utf-8", errors="replace") if log else ""
    stamps = [parse_time(stamp) for stamp in _STAMP.findall(text)]
    for match in REDIRECT.finditer(text):
        if match["path"].startswith(f"{rundir / 'logs'}/"):
            job.streams["stderr" if match["stream"] else "stdout"] = match["path"]
    exited = _EXITED.findall(text)
    exit_code = int(exited[-1]) if exited else job.exit_code
    if job.state is State.COMPLETE:
        exit_code = 0
    start = stamps[0] if stamps else file_time(rundir / "logs" / job.job_type)
    return TaskInfo(
        backend_task_id=job_id,
        name=step_name(job.job_type),
        state=job.state,
        start_time=start,
        end_time=stamps[-1] if stamps and job.state is not State.RUNNING else None,
        exit_code=exit_code if job.state is not State.RUNNING else None,
        stdout_path=job.streams.get("stdout"),
        stderr_path=job.streams.get("stderr", str(log or control_dir(rundir) / "stderr.txt")),
    )


class ToilBackend(CwlRunnerBackend):
    """CWL on Toil: local single-machine batch system by default."""

    sandbox_writable = ("messages.tsv", "toil.log")
    resumes = True

    name = "toil"
    command_name = "toil-cwl-runner"
    package_name = "toil"
    module_name = "toil"
    options = {
        "--retryCount": Option("--retryCount", "int", low=0, high=10, default="0"),
        "--maxCores": Option("--maxCores", "int", low=1, high=1024),
        "--maxMemory": Option("--maxMemory", "size"),
        "--defaultMemory": Option("--defaultMemory", "size"),
        "--defaultCores": Option("--defaultCores", "int", low=1, high=1024),
    }

    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        control = control_dir(rundir)
        params = self.write_params(spec, rundir, ("outputs", "logs", "joblogs", "tmp", "home"))
        engine_params = dict(spec.engine_parameters)
        # A failing CWL tool fails again: Toil's default of one retry only doubles the wait.
        engine_params.setdefault("--retryCount", "0")
        tmp = f"{rundir / 'tmp'}/"
        argv = [
            self.executable() or self.command_name,
            "--jobStore",
            f"file:{rundir / toil_resume.JOB_STORE}",
            "--batchSystem",
            self.settings.toil_batch_system,
            "--workDir",
            str(rundir / "tmp"),
            "--outdir",
            str(rundir / "outputs"),
            "--log-dir",
            str(rundir / "logs"),
            "--tmpdir-prefix",
            tmp,
            "--tmp-outdir-prefix",
            tmp,
            "--writeMessages",
            str(control / "messages.tsv"),
            "--writeLogs",
            str(rundir / "joblogs"),
            "--writeLogsFromAllJobs",
            "true",
            "--disableChaining",
            "true",
            "--logFile",
            str(control / "toil.log"),
            "--clean",
            "onSuccess",
            *(["--restart"] if toil_resume.restarts(rundir) else []),
            *([] if self.settings.containers else ["--no-container"]),
            *self.settings.toil_extra_args,
            *engine_args(engine_params, self.options),
            workflow,
            str(params),
        ]
        env = {**self.base_env(rundir), "HOME": str(rundir / "home"), "TOIL_HISTORY": "False"}
        env.update(slurm.slurm_env(self.settings) if self.on_slurm else {})
        # Measured: SIGTERM to the leader stops its workers (in their own groups) in 3-4 s.
        return LaunchPlan(argv, env, signal.SIGTERM, cancel_group=False, grace_seconds=30)

    def sandboxed(self, plan: LaunchPlan, spec: RunSpec, rundir: Path) -> LaunchPlan:
        boxed = super().sandboxed(plan, spec, rundir)
        aliases = toil_resume.alias_binds(rundir)  # a restart: its job store at the old paths too
        if not aliases or boxed.sandbox is None:
            return boxed
        return replace(boxed, sandbox={**boxed.sandbox, "binds": [*boxed.sandbox["binds"], *aliases]})

    def seed(self, old: Path, rundir: Path) -> None:
        finished = [task.name for task in self.read_tasks(old) if task.state is State.COMPLETE]
        toil_resume.seed_job_store(old, rundir, finished)

    def read_tasks(self, rundir: Path) -> list[TaskInfo]:
        jobs = read_messages(control_dir(rundir) / "messages.tsv")
        return toil_resume.reused_tasks(rundir) + [_task(job_id, job, rundir) for job_id, job in jobs.items()]

    @property
    def on_slurm(self) -> bool:
        """Whether this site runs Toil's steps as Slurm jobs (docs/cluster.md)."""
        return self.settings.toil_batch_system == "slurm"

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        super().check_workflow(workflow, spec)
        if self.on_slurm:
            slurm.check_unsandboxed(self.settings, "Toil", "toil_batch_system=slurm")
