"""The ``cwltool`` backend: the CWL reference runner as a local process.

Run dir layout (besides ``.flowdeck/``, see :mod:`flowdeck.backends.local.launcher`):
``outputs/`` (``--outdir``), ``logs/<job>/`` (``--log-dir``: a tool's declared
stdout/stderr), ``cache/`` (``--cachedir``: each step's outputs, kept so that the run can be
resumed, :mod:`flowdeck.backends.cwl_resume`; ``cache_tmp*/`` beside it while a step runs),
``tmp/`` (every other temporary and staging folder). Parameters are
written to ``.flowdeck/params.json``; the output object is cwltool's stdout.

Containers are off unless ``settings.containers``: then a tool that lists
``DockerRequirement`` under ``requirements`` is refused at submit (cwltool
itself would fail with exit code 33). We do not move it to ``hints`` for the
user: that would run the tool with whatever the host has, silently. Under
``hints`` it is accepted and ignored.

Tasks come from cwltool's stderr (``--timestamps``): one per ``[job NAME]``,
started at its command line, ended at ``completed success|permanentFail``.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from flowdeck.backends import cwl_resume
from flowdeck.backends.local.containers import check_images, podman_env
from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.engine_options import Option, engine_args
from flowdeck.backends.local.launcher import LaunchPlan, control_dir, parse_time
from flowdeck.backends.local.records import read_json, write_json
from flowdeck.backends.local.run_files import attachment, inside, is_url, tail
from flowdeck.domain.runs import RunSpec, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput

CWL_VERSIONS = ("v1.0", "v1.1", "v1.2")
_MAX_DOCUMENTS = 200  # referenced tool files followed at submit, at most
_LINE = re.compile(r"^\[(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] \w+ \[job (?P<job>[^\]]+)\] (?P<rest>.*)$")
_STAMPED = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ")
_CACHE_HIT = "Using cached output in "
REDIRECT = re.compile(r"(?:^|\s)(?P<stream>2?)> (?P<path>\S+)")


def load_cwl(path: Path) -> dict[str, Any]:
    """A CWL document as a mapping, or InvalidInput saying why not."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"workflow {path.name} does not parse as CWL (YAML/JSON): {exc}") from None
    if not isinstance(document, dict) or not ("cwlVersion" in document or "$graph" in document):
        raise InvalidInput(f"workflow {path.name} is not a CWL document (no cwlVersion)")
    return document


def check_cwl(path: Path, spec: RunSpec, containers: bool) -> set[str]:
    """Parse the workflow and the tool files it references among the attachments.

    Refuses a version we do not run, a referenced file outside the attachments,
    and (containers off) a DockerRequirement under ``requirements``. Returns the
    container images the documents name (``dockerPull``/``dockerImageId``).
    """
    root = load_cwl(path)
    version = root.get("cwlVersion")
    if version is not None and version not in CWL_VERSIONS:
        raise InvalidInput(f"cwlVersion {version!r} is not supported; supported: {', '.join(CWL_VERSIONS)}")
    seen: set[Path] = {path}
    todo: list[tuple[Path, Any]] = [(path, root)]
    images: set[str] = set()
    while todo:
        source, node = todo.pop()
        images |= docker_images(node)
        for reference in _walk(node, source.name, containers):
            target = inside(source.parent / reference, spec.attachments_dir)
            if target is None or not target.is_file():
                raise InvalidInput(f"{source.name} references {reference!r}, which is not among the attachments")
            if target not in seen and len(seen) < _MAX_DOCUMENTS:
                seen.add(target)
                todo.append((target, load_cwl(target)))
    return images


def docker_images(node: Any) -> set[str]:
    """The images DockerRequirements name anywhere in ``node`` (requirements or hints)."""
    if isinstance(node, list):
        return set().union(*(docker_images(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set().union(*(docker_images(value) for value in node.values())) if node else set()
    if node.get("class") == "DockerRequirement" or "dockerPull" in node or "dockerImageId" in node:
        found |= {v for k in ("dockerPull", "dockerImageId") if isinstance(v := node.get(k), str)}
    return found


def _walk(node: Any, where: str, containers: bool) -> list[str]:
    """Check one document's nodes; return the local files it references."""
    references: list[str] = []
    if isinstance(node, list):
        for item in node:
            references += _walk(item, where, containers)
        return references
    if not isinstance(node, dict):
        return references
    if not containers and _has_docker(node.get("requirements")):
        raise InvalidInput(
            f"{where}: DockerRequirement under requirements needs a container engine, and containers "
            "are off on this service; move it to hints to run the tool with the host's own programs"
        )
    for key, value in node.items():
        if key in {"run", "$import", "$include"} and isinstance(value, str):
            if not is_url(value):
                references.append(value.split("#", 1)[0])
        else:
            references += _walk(value, where, containers)
    return references


def _has_docker(requirements: Any) -> bool:
    if isinstance(requirements, dict):
        return "DockerRequirement" in requirements
    if isinstance(requirements, list):
        return any(isinstance(item, dict) and item.get("class") == "DockerRequirement" for item in requirements)
    return False


def cwl_params(params: Any, spec: RunSpec) -> Any:
    """The job object with every local File/Directory made an absolute attachment path.

    A location outside the attachments is refused, so a run reads nothing of the host.
    """
    if isinstance(params, list):
        return [cwl_params(item, spec) for item in params]
    if not isinstance(params, dict):
        return params
    result = {key: cwl_params(value, spec) for key, value in params.items()}
    if params.get("class") in {"File", "Directory"}:
        for key in ("location", "path"):
            value = result.get(key)
            if isinstance(value, str) and not is_url(value):
                result[key] = str(attachment(value, spec, what=f"input {params.get('class')}"))
    return result


@dataclass
class _Job:
    name: str
    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None
    exit_code: int | None = None
    streams: dict[str, str] = field(default_factory=dict)
    reused: bool = False


def read_jobs(stderr: Path, logs: Path) -> list[TaskInfo]:
    """Tasks from cwltool's timestamped stderr; ``logs`` is the ``--log-dir``."""
    jobs: dict[str, _Job] = {}
    current: _Job | None = None
    try:
        lines = stderr.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            if current is not None and not _STAMPED.match(line):
                _note_redirects(current, line, logs)  # a continuation of the job's command line
            else:
                current = None
            continue
        moment = parse_time(match["ts"].replace(" ", "T"))
        job = jobs.setdefault(match["job"], _Job(match["job"], start=moment))
        rest = match["rest"]
        current = job if "$ " in rest and job.status is None else None
        if current is not None:
            _note_redirects(job, rest, logs)
        if rest.startswith("exited with status: "):
            job.exit_code = int(rest.rsplit(":", 1)[1])
        elif rest.startswith("completed "):
            job.status, job.end = rest.split()[1], moment
        elif rest.startswith(_CACHE_HIT):  # a step of the run resumed: its cached output taken, not run
            job.status, job.end, job.reused = "success", moment, True
    return [_task(job, stderr) for job in jobs.values()]


def _note_redirects(job: _Job, text: str, logs: Path) -> None:
    # Only redirects into the log dir are cwltool's; a tool's script may hold its own.
    for match in REDIRECT.finditer(text):
        if match["path"].startswith(f"{logs}/"):
            job.streams["stderr" if match["stream"] else "stdout"] = match["path"]


def _task(job: _Job, run_stderr: Path) -> TaskInfo:
    state = {None: State.RUNNING, "success": State.COMPLETE}.get(job.status, State.EXECUTOR_ERROR)
    exit_code = job.exit_code if job.exit_code is not None else (0 if state is State.COMPLETE else None)
    if job.reused:  # named as Snakemake's re-used steps are
        return TaskInfo(
            backend_task_id=f"reused:{job.name}", name=f"{job.name} (re-used)", state=state, end_time=job.end
        )
    return TaskInfo(
        backend_task_id=job.name,
        name=job.name,
        state=state,
        start_time=job.start,
        end_time=job.end,
        exit_code=exit_code,
        stdout_path=job.streams.get("stdout"),
        # An undeclared stderr flows into cwltool's own stderr.
        stderr_path=job.streams.get("stderr", str(run_stderr)),
    )


def final_status(stderr: Path) -> str | None:
    """cwltool's ``Final process status is …`` word, if it got that far."""
    for line in reversed(tail(stderr, 40)):
        if "Final process status is " in line:
            return line.rsplit(" ", 1)[1]
    return None


class CwlRunnerBackend(LocalEngineBackend):
    """What cwltool and toil-cwl-runner share: CWL checks at submit, the job object written
    into the run dir, the output object on stdout, failures told by step."""

    workflow_types = {"CWL": list(CWL_VERSIONS)}

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        if not is_url(workflow):
            images = check_cwl(Path(workflow), spec, self.settings.containers)
            if images and self.settings.containers:
                check_images(self.settings, images)
        cwl_params(spec.workflow_params, spec)

    def write_params(self, spec: RunSpec, rundir: Path, folders: tuple[str, ...]) -> Path:
        """The job object's file, written; ``folders`` of the run dir made."""
        params = control_dir(rundir) / "params.json"
        write_json(params, cwl_params(spec.workflow_params, spec))
        for folder in folders:
            (rundir / folder).mkdir(exist_ok=True)
        return params

    def read_outputs(self, rundir: Path) -> dict[str, Any] | None:
        return read_json(control_dir(rundir) / "stdout.txt")

    def failure_reason(self, rundir: Path, exit_code: int) -> str:
        return cwl_failure(self.name, control_dir(rundir) / "stderr.txt", exit_code, self.read_tasks(rundir))


class CwltoolBackend(CwlRunnerBackend):
    """CWL v1.0 to v1.2 on the cwltool reference runner."""

    resumes = True
    name = "cwltool"
    command_name = "cwltool"
    package_name = "cwltool"
    module_name = "cwltool"
    options = {
        "--parallel": Option("--parallel", "flag", default="false"),
        "--strict-memory-limit": Option("--strict-memory-limit", "flag", default="false"),
        "--strict-cpu-limit": Option("--strict-cpu-limit", "flag", default="false"),
        "--on-error": Option("--on-error", "choice", ("stop", "continue"), default="stop"),
        "--relax-path-checks": Option("--relax-path-checks", "flag", default="false"),
    }

    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        params = self.write_params(spec, rundir, ("outputs", "logs", "tmp"))
        # Every run keeps a step cache, so that any of them can be resumed (cwl_resume); its keys
        # name files relative to the run's folder (--basedir), the same in the rerun.
        base = os.path.commonpath([spec.attachments_dir.resolve(), rundir])
        argv = [
            self.executable() or self.command_name,
            "--disable-color",
            "--timestamps",
            "--outdir",
            str(rundir / "outputs"),
            "--log-dir",
            str(rundir / "logs"),
            "--tmpdir-prefix",
            f"{rundir / 'tmp'}/",
            "--cachedir",
            str(rundir / cwl_resume.CACHE),
            "--basedir",
            base,
            *(["--podman"] if self.settings.containers else ["--no-container"]),
            *engine_args(spec.engine_parameters, self.options),
            "--",
            workflow,
            str(params),
        ]
        env, warm = self.base_env(rundir), self.warm_module()
        if self.uses_containers(spec):
            env, warm = podman_env(self.settings, env), None  # a warm fork would not see the wrapper on PATH
        # cwltool honours SIGTERM: it waits up to 10 s for its tools, then kills them.
        return LaunchPlan(argv, env, signal.SIGTERM, cancel_group=True, grace_seconds=30, warm=warm)

    def container_images(self, spec: RunSpec) -> set[str]:
        """Containers on and the run's CWL names images: podman runs its steps (ADR 0013)."""
        if not self.settings.containers or is_url(spec.workflow_url):
            return set()
        workflow = inside(spec.attachments_dir / spec.workflow_url, spec.attachments_dir)
        return check_cwl(workflow, spec, True) if workflow is not None and workflow.is_file() else set()

    def warm_module(self) -> str | None:
        """The warm-start module when runs may fork from a warm cwltool: only for the cwltool
        installed beside this Python, the one whose version service-info shows."""
        command = self.executable()
        if not self.settings.warm_starts or command is None:
            return None
        return "flowdeck.backends.cwltool_warm" if Path(command).parent == Path(sys.executable).parent else None

    def seed(self, old: Path, rundir: Path) -> None:
        cwl_resume.seed_cache(old, rundir)

    def read_tasks(self, rundir: Path) -> list[TaskInfo]:
        return read_jobs(control_dir(rundir) / "stderr.txt", rundir / "logs")


def cwl_failure(engine: str, stderr: Path, exit_code: int, tasks: list[TaskInfo]) -> str:
    """A readable reason: which steps failed and how, else the end of the engine's stderr."""
    failed = [task for task in tasks if task.state is State.EXECUTOR_ERROR]
    if exit_code == 33:
        lines = [line for line in tail(stderr, 40) if "Unsupported" in line or "equirement" in line]
        return f"{engine}: unsupported requirement" + (f": {lines[-1]}" if lines else "")
    if failed:
        steps = ", ".join(
            f"{task.name} (exit code {task.exit_code})" if task.exit_code is not None else task.name for task in failed
        )
        return f"{engine}: step failed: {steps}; see the task's stderr"
    last = tail(stderr, 3)
    status = final_status(stderr)
    detail = f"final status {status}" if status else " | ".join(last)
    return f"{engine} exited with code {exit_code}" + (f": {detail}" if detail else "")
