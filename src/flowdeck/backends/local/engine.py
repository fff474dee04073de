"""The base of every backend whose engine runs as a local process under the launcher:
submit, sync, cancel and recover are shared; each engine says how to build its command
and how to read its files."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import socket
import sys
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from flowdeck.backends import slurm
from flowdeck.backends.base import Backend
from flowdeck.backends.local import containers, sandbox
from flowdeck.backends.local.engine_options import Option, engine_args
from flowdeck.backends.local.launcher import (
    LaunchPlan,
    ProcessStatus,
    StartInProgress,
    control_dir,
    launch,
    request_cancel,
    status,
)
from flowdeck.backends.local.records import read_json
from flowdeck.backends.local.run_files import named_paths, output_files, resolve_workflow, tail
from flowdeck.domain.runs import CancelResult, OutputFile, RunHandle, RunSpec, Submitted, SyncReport, TaskInfo
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import ConfigurationError, EngineError, EngineUnavailable, InvalidInput


def reference_folders(spec: RunSpec) -> list[Path]:
    """The folders of the registered references a run reads (services.references puts their
    paths in the target): visible read-only in the sandbox."""
    folders: list[Path] = []
    for ref in (spec.pipeline_target.get("references") or {}).values():
        paths = [ref.get("fasta"), ref.get("annotation"), *(ref.get("indexes") or {}).values()]
        folders += [Path(path).parent for path in paths if path]
    return folders


class LocalEngineBackend(Backend):
    """A backend whose engine runs as a local process under the launcher.

    Subclasses say how to build the command (:meth:`plan`), where tasks and
    outputs are (:meth:`read_tasks`, :meth:`read_outputs`) and why a run failed
    (:meth:`failure_reason`); submit, sync, cancel and recover are shared.
    """

    runs_locally = True
    command_name: ClassVar[str]
    package_name: ClassVar[str]
    module_name: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    # Files of the control folder the engine itself writes (the rest is read-only in a sandbox).
    sandbox_writable: ClassVar[tuple[str, ...]] = ()
    # Folders of flowdeck the engine loads code from (plugins), read-only in a sandbox.
    sandbox_code: ClassVar[tuple[Path, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.engine_parameter_allowlist = frozenset(cls.options)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec(cls.module_name) is not None and cls.executable() is not None

    @classmethod
    def executable(cls) -> str | None:
        """The engine's command, looked up next to this Python first (the venv's bin)."""
        search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return shutil.which(cls.command_name, path=search)

    def engine_version(self) -> str:
        return importlib.metadata.version(self.package_name)

    def engine_parameter_defaults(self) -> dict[str, tuple[str, str]]:
        types = {"flag": "boolean", "int": "integer", "choice": "string", "size": "string", "name": "string"}
        return {name: (types[opt.kind], opt.default) for name, opt in sorted(self.options.items())}

    def validate(self, spec: RunSpec) -> None:
        super().validate(spec)
        engine_args(spec.engine_parameters, self.options)
        workflow = resolve_workflow(spec, self.settings.allowed_workflow_url_prefixes)
        self.check_workflow(workflow, spec)

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        """Engine-specific checks of the workflow and its parameters (InvalidInput)."""

    @abstractmethod
    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        """The engine command for this run; parameter files are written here."""

    @abstractmethod
    def read_tasks(self, rundir: Path) -> list[TaskInfo]:
        """The run's steps as the engine's files show them now."""

    @abstractmethod
    def read_outputs(self, rundir: Path) -> dict[str, Any] | None:
        """The engine's output object of a successful run."""

    def output_paths(self, rundir: Path, outputs: dict[str, Any]) -> Iterable[str]:
        """The files the output object names."""
        return named_paths(outputs)

    def seed(self, old: Path, rundir: Path) -> None:
        """Put the finished steps of the ended run in ``old`` into ``rundir`` before the engine
        starts, so that it re-uses them (backends with ``resumes``)."""
        raise NotImplementedError

    def failure_reason(self, rundir: Path, exit_code: int) -> str:
        """A readable reason for a failed run; by default the end of the engine's stderr."""
        last = tail(control_dir(rundir) / "stderr.txt", 3)
        return f"{self.name} exited with code {exit_code}" + (f": {' | '.join(last)}" if last else "")

    def uses_containers(self, spec: RunSpec) -> bool:
        """Whether podman runs this run's steps (docs/adr/0013)."""
        return bool(self.container_images(spec))

    def container_images(self, spec: RunSpec) -> set[str]:
        """The images podman runs this run's steps in (none: no containers)."""
        return set()

    def base_env(self, rundir: Path) -> dict[str, str]:
        """Engine environment: the venv's bin first on PATH, temp files inside the run dir."""
        tmp = rundir / "tmp"
        tmp.mkdir(exist_ok=True)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {"PATH": path, "TMPDIR": str(tmp)}

    def submit(self, spec: RunSpec) -> Submitted:
        rundir = spec.workdir.resolve()
        record = read_json(control_dir(rundir) / "launch.json")
        if record is None:
            try:
                self.validate(spec)
                workflow = resolve_workflow(spec, self.settings.allowed_workflow_url_prefixes)
                control_dir(rundir).mkdir(parents=True, exist_ok=True)
                if spec.resume_from is not None and self.resumes:
                    self.seed(spec.resume_from.resolve(), rundir)
                plan = self.plan(spec, workflow, rundir)
                # A containerised run is sandboxed only by a root service (its sandbox is entered, not bwrap'd).
                if self.settings.sandbox and (os.geteuid() == 0 or not self.uses_containers(spec)):
                    plan = self.sandboxed(plan, spec, rundir)
            except InvalidInput as exc:
                raise EngineError(exc.detail) from exc
            except sandbox.SandboxError as exc:
                raise EngineError(str(exc)) from exc
            try:
                record = launch(rundir, plan, key=spec.run_id)
            except StartInProgress as exc:  # transient: the next attempt finds the record
                raise EngineUnavailable(str(exc)) from exc
        data = {key: record.get(key) for key in ("pid", "start_ticks", "host")}
        return Submitted(backend_run_id=f"{record['host']}:{record['pid']}", backend_data=data)

    def sandboxed(self, plan: LaunchPlan, spec: RunSpec, rundir: Path) -> LaunchPlan:
        """The plan run in a sandbox of its own, its folder private to the sandbox user."""
        if shutil.which("bwrap") is None:
            raise sandbox.SandboxError(
                "the sandbox is on (FLOWDECK_SANDBOX) but bubblewrap (bwrap) is not installed on this worker"
            )
        settings = self.settings
        as_root = os.geteuid() == 0
        uid, gid = sandbox.user_ids(settings.sandbox_user) if as_root else (os.getuid(), os.getgid())
        control = control_dir(rundir)
        writable = [control / name for name in self.sandbox_writable]
        for path in writable:
            path.touch()
        sandbox.write_identity(control, uid, gid)
        network = settings.sandbox_network or spec.pipeline_target.get("network") is True
        limits = {
            "memory_mb": settings.sandbox_memory_mb,
            "cpu_seconds": settings.sandbox_cpu_seconds,
            "file_mb": settings.sandbox_max_file_mb,
            "processes": settings.sandbox_max_processes,
        }
        cgroups = sandbox.cgroup_root()
        if cgroups is None:  # the per-user rlimit is the fallback: shared by the user's runs
            limits["nproc"] = settings.sandbox_max_processes
        read_only = [spec.attachments_dir, *self.installation(), *settings.sandbox_read_only_paths]
        read_only += reference_folders(spec)
        box = sandbox.make_plan(rundir, read_only, writable, (uid, gid), network, limits)
        if cgroups is not None:
            box |= {"cgroup": str(cgroups), "cgroup_name": f"run-{spec.run_id}"}
        if as_root:
            _make_private(rundir, control, writable, uid, gid)
        env = {**plan.env, "HOME": sandbox.PRIVATE_TMP, "USER": "run", "LOGNAME": "run"}
        # In-process sandboxes need root; an unprivileged service starts its runs cold in bwrap.
        warm = plan.warm if as_root else None
        images = self.container_images(spec) if as_root else set()
        if images:  # rootless podman inside the sandbox, on the images shared with it (docs/adr/0013)
            try:
                containers.share_images(settings, images, (uid, gid))
            except ConfigurationError as exc:
                raise sandbox.SandboxError(exc.detail) from exc
            box |= {"nested": True, "binds": box["binds"] + containers.sandbox_binds(settings)}
            warm = None
        return replace(plan, env=env, sandbox=box, cancel_group=True, warm=warm)

    def installation(self) -> list[Path]:
        """What the engine needs to read: this Python's installation and the engine's command."""
        found = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent, *self.sandbox_code]
        command = self.executable()
        if command is not None:
            found.append(Path(command).resolve().parent)
        return found

    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        return [self.report(handle) for handle in handles]

    @property
    def on_slurm(self) -> bool:
        """Whether this engine runs a run's steps as Slurm jobs (docs/cluster.md). Then a cancel, and
        a run that ends any way but COMPLETE, also scancel what the run left on the cluster."""
        return False

    def cancel(self, handle: RunHandle) -> CancelResult:
        result = self._stop(handle)
        if self.on_slurm:  # the leader scancels its jobs as it stops; this also covers a dead leader
            slurm.cancel_jobs(self.settings, handle.workdir)
        return result

    def _stop(self, handle: RunHandle) -> CancelResult:
        if not status(handle.workdir).launched:
            return CancelResult(confirmed=True, message="nothing was running")
        stopped = request_cancel(handle.workdir.resolve())
        return CancelResult(confirmed=stopped, message=None if stopped else "stop signal sent")

    def report(self, handle: RunHandle) -> SyncReport:
        """One run's state, tasks, logs and (at the end) outputs from its run dir."""
        found = self._read_report(handle)
        if self.on_slurm and found.state is not None and found.state not in (State.RUNNING, State.COMPLETE):
            # A run that ended any other way leaves no Slurm job behind it.
            slurm.cancel_jobs(self.settings, handle.workdir)
        return found

    def _read_report(self, handle: RunHandle) -> SyncReport:
        rundir = handle.workdir.resolve()
        proc = status(rundir)
        control = control_dir(rundir)
        logs: dict[str, Any] = {
            "stdout_path": str(control / "stdout.txt"),
            "stderr_path": str(control / "stderr.txt"),
            "cmd": proc.argv or None,
        }
        if not proc.launched:
            missing = "no launch record in the run directory: the engine was never started here"
            return SyncReport(run_id=handle.run_id, state=State.SYSTEM_ERROR, reason=missing, system_logs=[missing])
        if proc.host and proc.host != socket.gethostname():
            # /proc of another machine cannot be read: only the launching host can tell.
            return SyncReport(run_id=handle.run_id, transient_error=f"run executes on host {proc.host}", retry_after=60)
        notes: list[str] = []
        tasks = self._safe_tasks(rundir, notes)
        if proc.running:
            return SyncReport(run_id=handle.run_id, state=State.RUNNING, tasks=tasks, system_logs=notes, **logs)
        state, reason = self._ending(rundir, proc)
        if state is not State.COMPLETE and state is not State.CANCELED:
            hit = limits_hit(rundir, proc)
            notes += hit
            reason = "; ".join([*([reason] if reason else []), *hit]) or None
        outputs: dict[str, Any] | None = None
        files: list[OutputFile] | None = None
        if state is State.COMPLETE:
            outputs = self.read_outputs(rundir) or {}
            files, skipped = output_files(self.output_paths(rundir, outputs), rundir)
            notes += skipped
        return SyncReport(
            run_id=handle.run_id,
            state=state,
            reason=reason,
            tasks=_close_tasks(tasks, state, proc.ended_at),
            outputs=outputs,
            output_files=files,
            exit_code=proc.exit_code,
            system_logs=[*notes, reason] if reason else notes,
            **logs,
        )

    def _ending(self, rundir: Path, proc: ProcessStatus) -> tuple[State, str | None]:
        if proc.exit_code is None:
            return (
                State.SYSTEM_ERROR,
                "the engine process vanished without an exit record (killed, or the machine restarted)",
            )
        if proc.start_error:
            return State.SYSTEM_ERROR, f"the engine could not start: {proc.start_error}"
        if proc.exit_code == 0:
            return State.COMPLETE, None
        if proc.canceled:
            return State.CANCELED, "canceled on request"
        return State.EXECUTOR_ERROR, self.failure_reason(rundir, proc.exit_code)

    def _safe_tasks(self, rundir: Path, notes: list[str]) -> list[TaskInfo]:
        # Engine files are read while the engine writes them: a parse error is news, not a failure.
        try:
            return self.read_tasks(rundir)
        except Exception as exc:
            notes.append(f"could not read {self.name} task records: {exc}")
            return []


def limits_hit(rundir: Path, proc: ProcessStatus) -> list[str]:
    """The sandbox limits a failed run ran into, from its exit record and its logs."""
    plan = read_json(control_dir(rundir) / sandbox.PLAN_FILE)
    if plan is None:
        return []
    logs = [control_dir(rundir) / "stderr.txt", *sorted((rundir / "logs").rglob("*"))[:50]]
    texts = ["\n".join(tail(path, 200)) for path in logs if path.is_file()]
    return sandbox.limit_notes(texts, plan.get("limits", {}), ended_by=proc.limit)


def _make_private(rundir: Path, control: Path, writable: list[Path], uid: int, gid: int) -> None:
    """The run folder belongs to the sandbox user, closed to others; the launcher's records
    (the control folder) stay the service's, readable but not writable by the run."""
    os.chown(rundir, uid, gid)
    rundir.chmod(0o700)
    for entry in rundir.iterdir():
        if entry != control:
            for path in [entry, *(entry.rglob("*") if entry.is_dir() and not entry.is_symlink() else [])]:
                os.chown(path, uid, gid, follow_symlinks=False)
    for path in writable:
        os.chown(path, uid, gid)


def _close_tasks(tasks: list[TaskInfo], state: State, ended_at: datetime | None) -> list[TaskInfo]:
    """Tasks still open when the run ended take the run's end state."""
    closed = State.EXECUTOR_ERROR if state is State.COMPLETE else state
    return [
        task if is_terminal(task.state) else replace(task, state=closed, end_time=task.end_time or ended_at)
        for task in tasks
    ]
