"""The ``snakemake`` backend: Snakemake 9 as a local process (workflow type ``SMK``).

The run dir is Snakemake's ``--directory``: relative inputs, outputs, ``logs``
and ``.snakemake/`` live there. The run's ``workflow_params`` become the config
(``.flowdeck/config.json``, passed with ``--configfile``).

Tasks come from flowdeck's own logger plugin (``--logger flowdeck``, shipped in
``snakemake_plugin/`` and put on the engine's PYTHONPATH): one JSON line per job
event in ``.flowdeck/events.jsonl``. A job's stderr is its rule's first ``log:``
file when it declares one (Snakemake does not split job output otherwise), else
Snakemake's own stderr.

Outputs (our choice): the output object maps each rule to the files its
finished jobs declared as ``output:``; ``output_files`` lists those that exist
inside the run dir. A Snakefile is Python: it is not parsed at submit (that
would run user code in the service); a broken one fails the run with
Snakemake's message.

Containers (docs/adr/0013): Snakemake runs ``container:`` only through
apptainer/singularity, which Debian 12 does not package (podman is no deployment
method of Snakemake 9). With containers on, a Snakefile (or an attached ``*.smk``)
holding a ``container:``/``containerized:`` directive is refused at submit rather than
run on the host; the scan reads Python tokens, not the Snakefile's code. Off, the
directive is ignored, as Snakemake does without ``--software-deployment-method``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import tokenize
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowdeck.backends import slurm, snakemake_resume
from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.engine_options import Option, engine_args
from flowdeck.backends.local.launcher import LaunchPlan, control_dir
from flowdeck.backends.local.records import write_json
from flowdeck.backends.local.run_files import inside, is_url
from flowdeck.domain.runs import RunSpec, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput

PLUGIN_PATH = Path(__file__).with_name("snakemake_plugin")
_EXIT_STATUS = re.compile(r"non-zero exit status (\d+)")
_CONTAINER_KEYWORDS = frozenset({"container", "containerized"})
_LINE_ENDS = frozenset({tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT})


def container_lines(text: str) -> list[int]:
    """Lines of ``container:``/``containerized:`` directives: the keyword first on a logical
    line (outside brackets) and followed by ``:``, as Snakemake's own tokenizer-based parser
    reads them; strings, comments and dict keys do not count. ValueError when the text does not
    tokenize (Snakemake could not read it either)."""
    found: list[int] = []
    depth, at_start, pending = 0, True, 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if pending and token.type == tokenize.OP and token.string == ":":
                found.append(pending)
            pending = (
                token.start[0]
                if at_start and token.type == tokenize.NAME and token.string in _CONTAINER_KEYWORDS
                else 0
            )
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth = max(depth - 1, 0)
            at_start = token.type in _LINE_ENDS or (token.type in {tokenize.NL, tokenize.COMMENT} and at_start)
            at_start = at_start or (token.type == tokenize.NL and depth == 0)
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ValueError(str(exc)) from None
    return found


@dataclass
class _Job:
    jobid: int
    rule: str = "?"
    wildcards: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    shellcmd: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    state: State = State.RUNNING
    exit_code: int | None = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The plugin's events; a line still being written is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def read_jobs(events: list[dict[str, Any]]) -> dict[int, _Job]:
    """Jobs by id, folded from the event stream."""
    jobs: dict[int, _Job] = {}
    pending_exit: int | None = None
    for event in events:
        kind, moment = event.get("event"), datetime.fromtimestamp(float(event.get("time", 0)), UTC)
        if kind == "job_started":
            for jobid in event.get("jobs") or []:
                jobs.setdefault(int(jobid), _Job(int(jobid), start=moment))
        elif kind == "job_info":
            job = jobs.setdefault(int(event["jobid"]), _Job(int(event["jobid"]), start=moment))
            job.rule, job.wildcards = str(event.get("rule_name")), dict(event.get("wildcards") or {})
            job.outputs, job.logs = list(event.get("output") or []), list(event.get("log") or [])
            job.shellcmd = event.get("shellcmd")
        elif kind == "job_finished":
            job = jobs.setdefault(int(event["job_id"]), _Job(int(event["job_id"]), start=moment))
            job.state, job.end, job.exit_code = State.COMPLETE, moment, 0
        elif kind == "error":
            found = _EXIT_STATUS.search(str(event.get("msg", "")))
            pending_exit = int(found.group(1)) if found else pending_exit
        elif kind == "job_error":
            job = jobs.setdefault(int(event["jobid"]), _Job(int(event["jobid"]), start=moment))
            job.rule = str(event.get("rule_name") or job.rule)
            job.state, job.end, job.exit_code = State.EXECUTOR_ERROR, moment, pending_exit
            pending_exit = None
    return jobs


def refuse_containers(workflow: Path, spec: RunSpec) -> None:
    """InvalidInput when the Snakefile or an attached ``Snakefile*``/``*.smk`` (what ``include:``
    usually names) asks for a container: Snakemake cannot run it on podman (docs/adr/0013)."""
    files = {workflow, *spec.attachments_dir.rglob("*.smk"), *spec.attachments_dir.rglob("Snakefile*")}
    for path in sorted(f for f in files if f.is_file()):
        name = path.relative_to(spec.attachments_dir) if path.is_relative_to(spec.attachments_dir) else path.name
        try:
            lines = container_lines(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"{name} could not be read for container directives: {exc}") from None
        if lines:
            raise InvalidInput(
                f"{name} line {lines[0]}: a container: directive, but Snakemake runs containers only "
                "through apptainer/singularity, which this service does not have (podman runs the "
                "containers of CWL and WDL here); remove the directive to run the rule on the host"
            )


class SnakemakeBackend(LocalEngineBackend):
    """Snakefiles on Snakemake 9, config from the run's parameters."""

    sandbox_writable = ("events.jsonl",)
    sandbox_code = (PLUGIN_PATH,)
    resumes = True

    name = "snakemake"
    workflow_types = {"SMK": ["9"]}
    command_name = "snakemake"
    package_name = "snakemake"
    module_name = "snakemake"
    options = {
        "--cores": Option("--cores", "int", low=1, high=1024, default="1"),
        "--keep-going": Option("--keep-going", "flag", default="false"),
        "--forceall": Option("--forceall", "flag", default="false"),
        "--until": Option("--until", "name"),
        "--retries": Option("--retries", "int", low=0, high=10, default="0"),
        "--latency-wait": Option("--latency-wait", "int", low=0, high=600, default="5"),
    }

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        if is_url(workflow):
            return
        try:
            text = Path(workflow).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the Snakefile is not UTF-8 text") from None
        if not text.strip():
            raise InvalidInput("the Snakefile is empty")
        if self.settings.containers:
            refuse_containers(Path(workflow), spec)
        if self.on_slurm:
            slurm.check_unsandboxed(self.settings, "Snakemake", "snakemake_executor=slurm")

    @property
    def on_slurm(self) -> bool:
        """Whether this site runs Snakemake's jobs as Slurm jobs (docs/cluster.md)."""
        return self.settings.snakemake_executor == "slurm"

    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        control = control_dir(rundir)
        config = control / "config.json"
        # Registered references reach the Snakefile as config["flowdeck_references"][parameter], the
        # site's GATK launcher (setting gatk_executable) as config["flowdeck_gatk"].
        site: dict[str, Any] = {"flowdeck_references": spec.pipeline_target.get("references")}
        site["flowdeck_gatk"] = self.settings.gatk_executable
        write_json(config, spec.workflow_params | {key: value for key, value in site.items() if value})
        params = dict(spec.engine_parameters)
        params.setdefault("--cores", "1")
        argv = [
            self.executable() or self.command_name,
            "--snakefile",
            workflow,
            "--directory",
            str(rundir),
            "--configfile",
            str(config),
            "--logger",
            "flowdeck",
            "--nocolor",
            "--rerun-incomplete",
            *engine_args(params, self.options),
            *(["--executor", "slurm", "--jobs", "unlimited"] if self.on_slurm else []),
            *self.settings.snakemake_extra_args,
        ]
        env = self.base_env(rundir) | (slurm.slurm_env(self.settings) if self.on_slurm else {})
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_PATH), os.environ.get("PYTHONPATH")) if p)
        env["FLOWDECK_SNAKEMAKE_EVENTS"] = str(control / "events.jsonl")
        # Measured: a signal to the PID alone waits for running jobs; to the group it stops in 0.2 s.
        return LaunchPlan(argv, env, signal.SIGINT, cancel_group=True, grace_seconds=30)

    def _jobs(self, rundir: Path) -> dict[int, _Job]:
        return read_jobs(read_events(control_dir(rundir) / "events.jsonl"))

    def seed(self, old: Path, rundir: Path) -> None:
        snakemake_resume.seed(old, rundir, self.read_outputs(old) or {})

    def read_tasks(self, rundir: Path) -> list[TaskInfo]:
        ran = [self._task(job, rundir) for job in self._jobs(rundir).values()]
        return snakemake_resume.reused_tasks(rundir) + ran

    def _task(self, job: _Job, rundir: Path) -> TaskInfo:
        label = ",".join(f"{key}={value}" for key, value in job.wildcards.items())
        logs = [str(real) for raw in job.logs if (real := inside(rundir / raw, rundir)) is not None]
        control = control_dir(rundir)
        return TaskInfo(
            backend_task_id=str(job.jobid),
            name=f"{job.rule}[{label}]" if label else job.rule,
            state=job.state,
            start_time=job.start,
            end_time=job.end,
            exit_code=job.exit_code,
            cmd=["bash", "-c", job.shellcmd.strip()] if job.shellcmd else None,
            stdout_path=str(control / "stdout.txt"),
            stderr_path=logs[0] if logs else str(control / "stderr.txt"),
        )

    def read_outputs(self, rundir: Path) -> dict[str, Any] | None:
        outputs: dict[str, list[str]] = snakemake_resume.reused(rundir)
        for job in self._jobs(rundir).values():
            if job.state is State.COMPLETE and job.outputs:
                outputs.setdefault(job.rule, []).extend(job.outputs)
        return {rule: list(dict.fromkeys(paths)) for rule, paths in outputs.items()}

    def output_paths(self, rundir: Path, outputs: dict[str, Any]) -> list[str]:
        return [path for paths in outputs.values() for path in paths]

    def failure_reason(self, rundir: Path, exit_code: int) -> str:
        failed = [job for job in self._jobs(rundir).values() if job.state is State.EXECUTOR_ERROR]
        if failed:
            parts = [
                f"rule {job.rule} (jobid {job.jobid})"
                + (f" exited with code {job.exit_code}" if job.exit_code is not None else " failed")
                for job in failed
            ]
            return f"snakemake: {'; '.join(parts)}; see the task's stderr"
        errors = [e for e in read_events(control_dir(rundir) / "events.jsonl") if e.get("event") == "error"]
        if errors:
            return "snakemake: " + " ".join(str(errors[-1].get("msg", "")).split())[:500]
        return super().failure_reason(rundir, exit_code)
