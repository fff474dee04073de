"""Engine processes that outlive the worker: launch, re-attach, exit codes, cancel.

Every run executes under a small launcher (this module run with ``-m``): the
launcher leads a new session, becomes the child subreaper of everything the
engine starts, waits for the engine, forwards a cancel as the engine's own
signal, SIGKILLs whatever is left once the engine ends (or after a grace
period), and only then writes the exit record. Its records live in
``RUNDIR/.flowdeck/``:

    launch.json   pid + /proc start time of the launcher, argv, host (written at submit)
    engine.json   the same for the engine process (written by the launcher)
    cancel.json   a cancel was requested, and when
    exit.json     exit code, end time, whether a cancel preceded the exit
    stdout.txt    the engine's stdout    stderr.txt   its stderr

A process is identified by pid *and* start time, so a recycled pid is never
mistaken for the run. A worker that restarts reads these files and knows whether
the run still lives, ended (and how), or vanished without an exit record.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from flowdeck.backends.base import Backend
from flowdeck.backends.checksums import file_checksum
from flowdeck.domain.runs import CancelResult, OutputFile, RunHandle, RunSpec, Submitted, SyncReport, TaskInfo
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import EngineError, InvalidInput

CONTROL_DIR = ".flowdeck"
_SUBREAPER = 36  # PR_SET_CHILD_SUBREAPER
_POLL_SECONDS = 0.1
_RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)

# Launchers this worker process started, so they are reaped and leave no zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class LaunchPlan:
    """How to run one engine: argv, extra environment, and how it is cancelled."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cancel_signal: signal.Signals = signal.SIGTERM
    cancel_group: bool = False
    grace_seconds: float = 30.0


@dataclass(frozen=True)
class ProcessStatus:
    """What the run directory says about the engine process."""

    launched: bool
    running: bool
    exit_code: int | None = None
    canceled: bool = False
    start_error: str | None = None
    host: str | None = None
    argv: list[str] = field(default_factory=list)
    ended_at: datetime | None = None


def control_dir(rundir: Path) -> Path:
    """The folder of flowdeck's own records inside a run directory."""
    return rundir / CONTROL_DIR


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot), or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """True when ``pid`` is a live process that started at ``ticks``."""
    return pid is not None and ticks is not None and start_ticks(pid) == ticks


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every live process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in {"Z", "X"}:
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    return sorted(pid for pid, (_, group) in _proc_table().items() if group == pgid)


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in _proc_table().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing or half written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename): a reader never sees half a record."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def launch(rundir: Path, plan: LaunchPlan) -> dict[str, Any]:
    """Start the engine under a launcher in its own session; return the launch record.

    Idempotent: when the run directory already holds a launch, that record is
    returned and nothing new starts.
    """
    control = control_dir(rundir)
    existing = read_json(control / "launch.json")
    if existing is not None:
        return existing
    control.mkdir(parents=True, exist_ok=True)
    launcher = [
        sys.executable, "-m", __name__, str(control), str(int(plan.cancel_signal)),
        "group" if plan.cancel_group else "pid", str(plan.grace_seconds), "--", *plan.argv,
    ]
    env = {**os.environ, **plan.env}
    with (control / "stdout.txt").open("ab") as out, (control / "stderr.txt").open("ab") as err:
        proc = subprocess.Popen(
            launcher, cwd=rundir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            # No preexec_fn (unsafe in a threaded worker): the launcher sets its own handlers
            # for SIGINT/SIGTERM/SIGQUIT, and exec resets handled signals to SIG_DFL in the engine.
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    record = {
        "pid": proc.pid, "start_ticks": _wait_ticks(proc.pid), "host": socket.gethostname(),
        "argv": plan.argv, "launched_at": _now(),
    }
    write_json(control / "launch.json", record)
    return record


def _wait_ticks(pid: int) -> int | None:
    for _ in range(50):
        ticks = start_ticks(pid)
        if ticks is not None:
            return ticks
        time.sleep(0.01)
    return None


def reap() -> None:
    """Collect the exit status of launchers this process started (no zombies)."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def status(rundir: Path) -> ProcessStatus:
    """Whether the run's engine lives, ended (with its exit record) or vanished."""
    reap()
    control = control_dir(rundir)
    launch_record = read_json(control / "launch.json")
    engine = read_json(control / "engine.json") or {}
    if launch_record is None and not engine:
        return ProcessStatus(launched=False, running=False)
    launcher = launch_record or engine.get("launcher", {})
    host, argv = launcher.get("host"), list(launcher.get("argv", []))
    canceled = (control / "cancel.json").exists()
    if is_alive(launcher.get("pid"), launcher.get("start_ticks")) or is_alive(
        engine.get("pid"), engine.get("start_ticks")
    ):
        return ProcessStatus(True, True, canceled=canceled, host=host, argv=argv)
    ended = read_json(control / "exit.json")
    if ended is None:
        return ProcessStatus(True, False, canceled=canceled, host=host, argv=argv)
    return ProcessStatus(
        launched=True, running=False, exit_code=int(ended["exit_code"]),
        canceled=bool(ended.get("cancel_requested")) or canceled,
        start_error=ended.get("start_error"), host=host, argv=argv,
        ended_at=parse_time(ended.get("ended_at")),
    )


def request_cancel(rundir: Path) -> bool:
    """Record the cancel and ask the launcher to stop the engine.

    Returns True when nothing of the run is running any more.
    """
    control = control_dir(rundir)
    if not (control / "cancel.json").exists():
        write_json(control / "cancel.json", {"requested_at": _now()})
    current = status(rundir)
    if not current.running:
        return True
    launcher = read_json(control / "launch.json") or (read_json(control / "engine.json") or {}).get(
        "launcher", {}
    )
    if is_alive(launcher.get("pid"), launcher.get("start_ticks")):
        os.kill(int(launcher["pid"]), signal.SIGTERM)
        return False
    # The launcher was killed but its engine lives on: nobody enforces a grace period.
    engine = read_json(control / "engine.json") or {}
    if is_alive(engine.get("pid"), engine.get("start_ticks")):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(engine["pgid"]), signal.SIGKILL)
    return False


# --- what every local engine backend shares -----------------------------------------

_SIZE = re.compile(r"\d+(\.\d+)?([KMGTP]i?B?)?", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_URL_SCHEMES = ("https://", "http://")


@dataclass(frozen=True)
class Option:
    """One allowed engine parameter: its command-line flag and the values it takes.

    Values are checked against a closed shape (integer, size, name, choice,
    flag), so no value can smuggle another option into the engine's argv.
    """

    flag: str
    kind: Literal["flag", "int", "choice", "size", "name"]
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 10_000
    default: str = ""

    def args(self, name: str, value: str) -> list[str]:
        """The argv words for ``value``, or InvalidInput."""
        text = str(value).strip()
        if self.kind == "flag":
            if text.lower() in {"", "true", "1", "yes"}:
                return [self.flag]
            if text.lower() in {"false", "0", "no"}:
                return []
            raise InvalidInput(f"engine parameter {name} is a flag: use true or false")
        ok = {
            "int": text.isdigit() and self.low <= int(text) <= self.high,
            "choice": text in self.choices,
            "size": bool(_SIZE.fullmatch(text)),
            "name": bool(_NAME.fullmatch(text)),
        }[self.kind]
        if not ok:
            shape = {
                "int": f"an integer within {self.low}..{self.high}",
                "choice": "one of " + ", ".join(self.choices),
                "size": "a size such as 512M or 4G",
                "name": "a name (letters, digits, _ and .)",
            }[self.kind]
            raise InvalidInput(f"engine parameter {name} must be {shape}, not {text!r}")
        return [self.flag, text]


def engine_args(params: Mapping[str, str], options: Mapping[str, Option]) -> list[str]:
    """The argv words for a run's allowed engine parameters (unknown ones: InvalidInput)."""
    words: list[str] = []
    for name in sorted(params):
        if name not in options:
            raise InvalidInput(f"engine parameter {name} is not allowed")
        words += options[name].args(name, params[name])
    return words


def is_url(value: str) -> bool:
    """True for a remote location the engine fetches itself."""
    return value.startswith(_URL_SCHEMES)


def inside(path: Path, root: Path) -> Path | None:
    """``path``'s real location when it lies inside ``root`` (symlinks followed), else None."""
    real = path.resolve()
    return real if real.is_relative_to(root.resolve()) else None


def resolve_workflow(spec: RunSpec, allowed_prefixes: Sequence[str]) -> str:
    """The workflow to run: an allowed https:// URL, or a file among the run's attachments."""
    url = spec.workflow_url.strip()
    if is_url(url):
        if not any(url.startswith(prefix) for prefix in allowed_prefixes):
            raise InvalidInput(f"workflow_url {url!r} is not under an allowed prefix")
        return url
    return str(attachment(url, spec, what="workflow_url"))


def attachment(value: str, spec: RunSpec, what: str) -> Path:
    """A path (relative to the attachments, or absolute inside them) that must exist."""
    if "://" in value and not value.startswith("file://"):
        raise InvalidInput(f"{what} {value!r}: unsupported scheme")
    raw = value.removeprefix("file://")
    real = inside(spec.attachments_dir / raw, spec.attachments_dir)
    if real is None:
        raise InvalidInput(f"{what} {value!r} points outside the run's attachments")
    if not real.exists():
        raise InvalidInput(f"{what} {value!r} is not among the run's attachments")
    return real


def named_paths(value: Any) -> Iterator[str]:
    """Every file location an output object names (CWL File objects, path strings)."""
    if isinstance(value, dict):
        if value.get("class") in {"File", "Directory"}:
            location = value.get("path") or value.get("location")
            if isinstance(location, str):
                yield location.removeprefix("file://")
            for extra in value.get("secondaryFiles") or []:
                yield from named_paths(extra)
            return
        for item in value.values():
            yield from named_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from named_paths(item)
    elif isinstance(value, str) and value.startswith(("/", "file://")):
        yield value.removeprefix("file://")


def output_files(paths: Iterable[str], rundir: Path) -> tuple[list[OutputFile], list[str]]:
    """Size and checksum of every named file inside the run dir; notes on those skipped."""
    root = rundir.resolve()
    found: dict[Path, OutputFile] = {}
    skipped: list[str] = []
    for raw in paths:
        real = inside(root / raw, root)
        if real is None:
            skipped.append(f"output {raw} lies outside the run directory: not listed")
            continue
        # Named as the engine named it (run/out/x.txt), located where it really is.
        named = Path(os.path.normpath(root / raw))
        label = named.relative_to(root) if named.is_relative_to(root) else real.relative_to(root)
        members = sorted(p for p in real.rglob("*") if p.is_file()) if real.is_dir() else [real]
        for member in members:
            kept = inside(member, root)
            if kept is None or not kept.is_file() or kept in found:
                continue
            found[kept] = OutputFile(
                name=str(label / member.relative_to(real)) if member != real else str(label),
                location=str(kept), size=kept.stat().st_size, checksum=file_checksum(kept),
            )
    return list(found.values()), skipped


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last non-empty lines of a text file (empty when missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def parse_time(text: str | None) -> datetime | None:
    """An ISO time (naive means local time) as an aware datetime, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


def file_time(path: Path) -> datetime | None:
    """A file's modification time, or None when it is missing."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


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

    def failure_reason(self, rundir: Path, exit_code: int) -> str:
        """A readable reason for a failed run; by default the end of the engine's stderr."""
        last = tail(control_dir(rundir) / "stderr.txt", 3)
        return f"{self.name} exited with code {exit_code}" + (f": {' | '.join(last)}" if last else "")

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
                plan = self.plan(spec, workflow, rundir)
            except InvalidInput as exc:
                raise EngineError(exc.detail) from exc
            record = launch(rundir, plan)
        data = {key: record.get(key) for key in ("pid", "start_ticks", "host")}
        return Submitted(backend_run_id=f"{record['host']}:{record['pid']}", backend_data=data)

    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        return [self.report(handle) for handle in handles]

    def cancel(self, handle: RunHandle) -> CancelResult:
        if not status(handle.workdir).launched:
            return CancelResult(confirmed=True, message="nothing was running")
        stopped = request_cancel(handle.workdir.resolve())
        return CancelResult(confirmed=stopped, message=None if stopped else "stop signal sent")

    def report(self, handle: RunHandle) -> SyncReport:
        """One run's state, tasks, logs and (at the end) outputs from its run dir."""
        rundir = handle.workdir.resolve()
        proc = status(rundir)
        control = control_dir(rundir)
        logs: dict[str, Any] = {
            "stdout_path": str(control / "stdout.txt"), "stderr_path": str(control / "stderr.txt"),
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
        outputs: dict[str, Any] | None = None
        files: list[OutputFile] | None = None
        if state is State.COMPLETE:
            outputs = self.read_outputs(rundir) or {}
            files, skipped = output_files(self.output_paths(rundir, outputs), rundir)
            notes += skipped
        return SyncReport(
            run_id=handle.run_id, state=state, reason=reason, tasks=_close_tasks(tasks, state, proc.ended_at),
            outputs=outputs, output_files=files, exit_code=proc.exit_code,
            system_logs=[*notes, reason] if reason else notes, **logs,
        )

    def _ending(self, rundir: Path, proc: ProcessStatus) -> tuple[State, str | None]:
        if proc.exit_code is None:
            return State.SYSTEM_ERROR, "the engine process vanished without an exit record (killed, or the machine restarted)"
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


def _close_tasks(tasks: list[TaskInfo], state: State, ended_at: datetime | None) -> list[TaskInfo]:
    """Tasks still open when the run ended take the run's end state."""
    closed = State.EXECUTOR_ERROR if state is State.COMPLETE else state
    return [
        task if is_terminal(task.state) else replace(task, state=closed, end_time=task.end_time or ended_at)
        for task in tasks
    ]


# --- the launcher: runs in its own process, started by launch() ---------------------


def _set_subreaper() -> None:
    # Orphans of the engine (daemonised or setsid'd jobs) re-parent to us, so the
    # final sweep finds them even outside the process group.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_SUBREAPER, 1, 0, 0, 0)


def _kill_descendants() -> None:
    me = os.getpid()
    for _ in range(50):
        left = descendants(me)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap_any()
        time.sleep(0.02)
    _reap_any()


def _reap_any() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


class _Launcher:
    def __init__(self, control: Path, cancel_signal: int, group: bool, grace: float) -> None:
        self.control, self.cancel_signal, self.group, self.grace = control, cancel_signal, group, grace
        self.deadline: float | None = None
        self.engine_pid = 0

    def on_signal(self, signum: int, frame: object) -> None:
        # The launcher survives its own group signal; it forwards once and arms the grace timer.
        if self.deadline is not None or not self.engine_pid:
            return
        self.deadline = time.monotonic() + self.grace
        with contextlib.suppress(ProcessLookupError):
            if self.group:
                os.killpg(os.getpgid(0), self.cancel_signal)
            else:
                os.kill(self.engine_pid, self.cancel_signal)

    def run(self, argv: list[str]) -> int:
        _set_subreaper()
        # A handler, not SIG_IGN: even when our parent ignored SIGINT (a background job of a
        # shell does), exec gives the engine SIG_DFL, so it obeys the cancel (measured: cwltool
        # and Snakemake otherwise ignore SIGINT and run to the end).
        for signum in _RESET_SIGNALS:
            signal.signal(signum, self.on_signal)
        try:
            engine = subprocess.Popen(argv)
        except OSError as exc:
            return self.finish(127, start_error=f"{argv[0]}: {exc.strerror or exc}")
        self.engine_pid = engine.pid
        launcher = read_json(self.control / "launch.json") or {}
        write_json(self.control / "engine.json", {
            "pid": engine.pid, "pgid": os.getpgid(0), "start_ticks": _wait_ticks(engine.pid),
            "launcher": {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid()),
                         "host": socket.gethostname(), "argv": argv, **launcher},
        })
        if (self.control / "cancel.json").exists():  # cancelled before we were ready
            self.on_signal(signal.SIGTERM, None)
        code = self.wait(engine.pid)
        engine.returncode = code
        return self.finish(code)

    def wait(self, pid: int) -> int:
        while True:
            try:
                done, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 255
            if done == pid:
                return os.waitstatus_to_exitcode(wait_status)
            if done == 0:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    _kill_descendants()
                time.sleep(_POLL_SECONDS)

    def finish(self, code: int, start_error: str | None = None) -> int:
        _kill_descendants()
        record: dict[str, Any] = {
            "exit_code": code, "ended_at": _now(), "cancel_requested": self.deadline is not None,
        }
        if start_error:
            record["start_error"] = start_error
            sys.stderr.write(f"flowdeck launcher: could not start the engine: {start_error}\n")
        write_json(self.control / "exit.json", record)
        return code if 0 <= code < 256 else 128 + abs(code) % 128


def main(args: list[str]) -> int:
    """Launcher entry point: CONTROL_DIR SIGNAL group|pid GRACE -- ARGV..."""
    control, signum, target, grace, separator, *argv = args
    if separator != "--" or not argv:
        sys.stderr.write("usage: CONTROL_DIR SIGNAL group|pid GRACE -- ARGV...\n")
        return 2
    launcher = _Launcher(Path(control), int(signum), target == "group", float(grace))
    return launcher.run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
