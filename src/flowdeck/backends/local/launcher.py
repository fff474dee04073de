"""The launcher: engine processes that outlive the worker; launch, re-attach, exit codes, cancel.

Every run executes under a small launcher (this module run with ``-m``): the
launcher leads a new session, becomes the child subreaper of everything the
engine starts, waits for the engine, forwards a cancel as the engine's own
signal, SIGKILLs whatever is left once the engine ends (or after a grace
period), and only then writes the exit record. Its records live in
``RUNDIR/.flowdeck/``:

    launch.lock   held (flock) from before the engine starts until the launcher ends
    launch.json   pid + /proc start time of the launcher, argv, host (written at submit)
    engine.json   the same for the engine process (written by the launcher)
    cancel.json   a cancel was requested, and when
    exit.json     exit code, end time, whether a cancel preceded the exit
    stdout.txt    the engine's stdout    stderr.txt   its stderr

Starting is crash-exact: the starter takes ``launch.lock`` before anything starts and
hands the lock to the launcher, which holds it for the engine's life. A worker that
finds no ``launch.json`` (its predecessor died in between) tells "started, record not
yet written" (the lock is held, or the launcher's own ``engine.json`` exists) from
"never started" (the lock is free and no launcher left a record), and never starts a
run twice in the same folder.

A process is identified by pid *and* start time, so a recycled pid is never
mistaken for the run. A worker that restarts reads these files and knows whether
the run still lives, ended (and how), or vanished without an exit record.

This module runs as every run's launcher process, so it imports the standard
library and :mod:`flowdeck.backends.local.procfs` only: each import would delay
every run's start.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdeck.backends.local import sandbox
from flowdeck.backends.local.procfs import child_start_ticks, descendants, is_alive, start_ticks, wait_gone
from flowdeck.backends.local.records import now, read_json, write_exit, write_json

CONTROL_DIR = ".flowdeck"
_SUBREAPER = 36  # PR_SET_CHILD_SUBREAPER
# Between checks of the grace deadline and sweeps of orphans; the engine's exit itself wakes the
# launcher at once (pidfd), or after _POLL_SECONDS where pidfd_open is missing.
_IDLE_SECONDS = 1.0
_POLL_SECONDS = 0.1
# How long a worker waits for the record of a start another process is making.
_START_WAIT_SECONDS = 30.0
_RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_OWN_PREFIX = "FLOWDECK_"

# Called with a run's key when a launcher this process started has ended (from a waiter thread).
_EXIT_LISTENERS: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class LaunchPlan:
    """How to run one engine: argv, extra environment, and how it is cancelled."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cancel_signal: signal.Signals = signal.SIGTERM
    cancel_group: bool = False
    grace_seconds: float = 30.0
    # A module for warm starts (see flowdeck.backends.local.warm_start), or None to start the command cold.
    warm: str | None = None
    # A sandbox plan (flowdeck.backends.local.sandbox), or None to run the engine unconfined.
    sandbox: dict[str, Any] | None = None


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
    limit: str | None = None


def control_dir(rundir: Path) -> Path:
    """The folder of flowdeck's own records inside a run directory."""
    return rundir / CONTROL_DIR


def launch(rundir: Path, plan: LaunchPlan, key: str = "") -> dict[str, Any]:
    """Start the engine under a launcher in its own session; return the launch record.

    Idempotent: when the run directory already holds a launch, that record is
    returned and nothing new starts. When the launcher ends, every exit listener
    is called with ``key``.
    """
    control = control_dir(rundir)
    existing = read_json(control / "launch.json")
    if existing is not None:
        return existing
    control.mkdir(parents=True, exist_ok=True)
    lock = claim_start(control)
    if lock is None:  # an earlier starter (or its launcher) holds the lock: started
        return _await_record(control)
    try:
        earlier = _launcher_record(control)
        if earlier is not None:  # a launcher ran here and ended; only launch.json was lost
            write_json(control / "launch.json", earlier)
            return earlier
        return _start(rundir, plan, key, lock)
    finally:
        os.close(lock)


def claim_start(control: Path) -> int | None:
    """The run's start lock (an open descriptor holding it), or None when another holds it."""
    fd = os.open(control / "launch.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _launcher_record(control: Path) -> dict[str, Any] | None:
    """The launch record a launcher left in engine.json, if one ran in this folder."""
    launcher = (read_json(control / "engine.json") or {}).get("launcher")
    return dict(launcher) if isinstance(launcher, dict) and "pid" in launcher else None


def _await_record(control: Path, timeout: float = _START_WAIT_SECONDS) -> dict[str, Any]:
    """The record of a start another process made: its launch.json, or its launcher's own."""
    deadline = time.monotonic() + timeout
    while True:
        record = read_json(control / "launch.json")
        if record is not None:
            return record
        record = _launcher_record(control)
        if record is not None:  # its starter died before writing it: written now, the same facts
            write_json(control / "launch.json", record)
            return record
        if time.monotonic() > deadline:
            raise StartInProgress(f"{control.parent}: another process is starting this run")
        time.sleep(0.05)


class StartInProgress(RuntimeError):
    """Another process holds the run's start lock and has not recorded the start yet."""


def _start(rundir: Path, plan: LaunchPlan, key: str, lock: int) -> dict[str, Any]:
    control = control_dir(rundir)
    if plan.sandbox is not None:
        write_json(control / sandbox.PLAN_FILE, plan.sandbox)
    env = {**engine_environ(), **plan.env}
    warm_pid = _start_warm(rundir, plan, env, lock) if plan.warm else None
    if warm_pid is None:
        pid = _start_cold(rundir, plan, env, key, lock)
        ticks = _wait_ticks(pid)
    else:
        pid, ticks = warm_pid, _wait_ticks(warm_pid)
        threading.Thread(target=_await_gone, args=(pid, ticks, key), name=f"launcher-{pid}", daemon=True).start()
    record = {
        "pid": pid,
        "start_ticks": ticks,
        "host": socket.gethostname(),
        "argv": plan.argv,
        "launched_at": now(),
        **({"warm": plan.warm} if warm_pid is not None else {}),
    }
    write_json(control / "launch.json", record)
    return record


def engine_environ() -> dict[str, str]:
    """This process's environment without flowdeck's own settings: they may hold the database
    password, API keys and the storage secret, and a workflow's commands can read what they inherit."""
    return {name: value for name, value in os.environ.items() if not name.upper().startswith(_OWN_PREFIX)}


def _start_warm(rundir: Path, plan: LaunchPlan, env: dict[str, str], lock: int) -> int | None:
    """The launcher's pid, forked by the engine's warm server; None when that failed."""
    from flowdeck.backends.local import warm_start  # the launcher process itself never needs it

    request = {
        "cwd": str(rundir),
        "control": str(control_dir(rundir)),
        "env": env,
        "argv": plan.argv,
        "cancel_signal": int(plan.cancel_signal),
        "group": plan.cancel_group,
        "grace": plan.grace_seconds,
        "sandbox": plan.sandbox,
    }
    try:
        return warm_start.server_for(plan.warm or "").start_launcher(request, lock)
    except warm_start.WarmStartError as exc:
        # A cold start is slower, never wrong: the run goes on.
        sys.stderr.write(f"flowdeck: starting this run cold: {exc}\n")
        return None


def _start_cold(rundir: Path, plan: LaunchPlan, env: dict[str, str], key: str, lock: int) -> int:
    control = control_dir(rundir)
    launcher = [
        sys.executable,
        "-m",
        __name__,
        str(control),
        str(int(plan.cancel_signal)),
        "group" if plan.cancel_group else "pid",
        str(plan.grace_seconds),
        "--",
        *plan.argv,
    ]
    with (control / "stdout.txt").open("ab") as out, (control / "stderr.txt").open("ab") as err:
        proc = subprocess.Popen(
            launcher,
            cwd=rundir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            # No preexec_fn (unsafe in a threaded worker): the launcher sets its own handlers
            # for SIGINT/SIGTERM/SIGQUIT, and exec resets handled signals to SIG_DFL in the engine.
            start_new_session=True,
            # The launcher holds the start lock for its life (the engine does not inherit it).
            pass_fds=(lock,),
        )
    # A thread per launcher reaps it (no zombie) the moment it ends and tells the listeners,
    # so a worker learns of the exit without waiting for its next poll.
    threading.Thread(target=_await_exit, args=(proc, key), name=f"launcher-{proc.pid}", daemon=True).start()
    return proc.pid


def parse_time(text: str | None) -> datetime | None:
    """An ISO time (naive means local time) as an aware datetime, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


def _wait_ticks(pid: int) -> int | None:
    """A launcher's start time: it lives as long as its engine, so it is read once it shows."""
    for _ in range(50):
        ticks = start_ticks(pid)
        if ticks is not None:
            return ticks
        time.sleep(0.01)
    return None


def _await_exit(proc: subprocess.Popen[bytes], key: str) -> None:
    proc.wait()
    _tell_exit(key)


def _await_gone(pid: int, ticks: int | None, key: str) -> None:
    # A warm-started launcher is the warm server's child, not ours: followed by its pidfd.
    wait_gone(pid, ticks)
    _tell_exit(key)


def _tell_exit(key: str) -> None:
    for listener in list(_EXIT_LISTENERS):
        try:
            listener(key)
        except Exception as exc:  # a listener's bug must not hide the exit from the others
            sys.stderr.write(f"flowdeck launcher: exit listener failed: {exc!r}\n")


def subscribe_exits(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener(key)`` (from another thread) whenever a launcher this process started ends.

    Returns the function that unsubscribes it. Launchers of an earlier process are
    not children of this one: their exits are only seen by polling :func:`status`.
    """
    _EXIT_LISTENERS.append(listener)
    return lambda: _EXIT_LISTENERS.remove(listener) if listener in _EXIT_LISTENERS else None


def status(rundir: Path) -> ProcessStatus:
    """Whether the run's engine lives, ended (with its exit record) or vanished."""
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
        launched=True,
        running=False,
        exit_code=int(ended["exit_code"]),
        canceled=bool(ended.get("cancel_requested")) or canceled,
        start_error=ended.get("start_error"),
        host=host,
        argv=argv,
        ended_at=parse_time(ended.get("ended_at")),
        limit=ended.get("limit"),
    )


def request_cancel(rundir: Path) -> bool:
    """Record the cancel and ask the launcher to stop the engine.

    Returns True when nothing of the run is running any more.
    """
    control = control_dir(rundir)
    if not (control / "cancel.json").exists():
        write_json(control / "cancel.json", {"requested_at": now()})
    current = status(rundir)
    if not current.running:
        return True
    launcher = read_json(control / "launch.json") or (read_json(control / "engine.json") or {}).get("launcher", {})
    if is_alive(launcher.get("pid"), launcher.get("start_ticks")):
        os.kill(int(launcher["pid"]), signal.SIGTERM)
        return False
    # The launcher was killed but its engine lives on: nobody enforces a grace period.
    engine = read_json(control / "engine.json") or {}
    if is_alive(engine.get("pid"), engine.get("start_ticks")):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(engine["pgid"]), signal.SIGKILL)
    return False


# --- the launcher: runs in its own process, started by launch() ---------------------


def _exit_fd(pid: int) -> int | None:
    """A pidfd that turns readable when ``pid`` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


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
        self.sandbox = read_json(control / sandbox.PLAN_FILE)
        self.limit: str | None = None

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
        """Start the engine command and follow it to its end."""
        _set_subreaper()
        # A handler, not SIG_IGN: even when our parent ignored SIGINT (a background job of a
        # shell does), exec gives the engine SIG_DFL, so it obeys the cancel (measured: cwltool
        # and Snakemake otherwise ignore SIGINT and run to the end).
        for signum in _RESET_SIGNALS:
            signal.signal(signum, self.on_signal)
        try:
            engine = self.start(argv)
        except OSError as exc:
            return self.finish(127, start_error=f"{argv[0]}: {exc.strerror or exc}")
        code = self.follow(engine.pid, child_start_ticks(engine.pid), argv)
        engine.returncode = code
        return code

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """The engine command, inside the run's sandbox when it has one."""
        plan = self.sandbox
        if plan is None:
            return subprocess.Popen(argv)
        sandbox.join_cgroup(plan)
        # Safe here: the launcher has one thread.
        return subprocess.Popen(
            sandbox.wrap(plan, argv, os.geteuid() == 0), preexec_fn=lambda: sandbox.prepare_child(plan)
        )

    def adopt(self, engine_pid: int, engine_ticks: int | None, argv: list[str]) -> int:
        """Follow an engine a warm server forked (already our child) to its end."""
        _set_subreaper()
        for signum in _RESET_SIGNALS:
            signal.signal(signum, self.on_signal)
        # The warm server blocked these until now: a cancel sent meanwhile is delivered here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _RESET_SIGNALS)
        return self.follow(engine_pid, engine_ticks, argv)

    def follow(self, engine_pid: int, engine_ticks: int | None, argv: list[str]) -> int:
        """Record the engine, forward an early cancel, wait for the end, write the exit record."""
        self.engine_pid = engine_pid
        launcher = read_json(self.control / "launch.json") or {}
        write_json(
            self.control / "engine.json",
            {
                "pid": engine_pid,
                "pgid": os.getpgid(0),
                "start_ticks": engine_ticks,
                "launcher": {
                    "pid": os.getpid(),
                    "start_ticks": start_ticks(os.getpid()),
                    "host": socket.gethostname(),
                    "argv": argv,
                    **launcher,
                },
            },
        )
        if (self.control / "cancel.json").exists():  # cancelled before we were ready
            self.on_signal(signal.SIGTERM, None)
        return self.finish(self.wait(engine_pid))

    def wait(self, pid: int) -> int:
        exited = _exit_fd(pid)
        try:
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
                    self.check_limits()
                    self.pause(exited)
        finally:
            if exited is not None:
                os.close(exited)

    def check_limits(self) -> None:
        """End the run once it reached its process ceiling: a fork bomb never ends by itself."""
        if self.sandbox is not None and self.limit is None and sandbox.processes_limit_hit(self.sandbox):
            self.limit = "processes"
            _kill_descendants()

    def pause(self, exited: int | None) -> None:
        """Sleep until the engine ends, the grace deadline passes, or the next sweep of orphans."""
        if exited is None:
            time.sleep(_POLL_SECONDS)
            return
        timeout = _IDLE_SECONDS
        if self.deadline is not None:
            timeout = max(0.0, min(timeout, self.deadline - time.monotonic()))
        select.select([exited], [], [], timeout)

    def finish(self, code: int, start_error: str | None = None) -> int:
        _kill_descendants()
        if start_error:
            sys.stderr.write(f"flowdeck launcher: could not start the engine: {start_error}\n")
        if self.sandbox is not None:
            sandbox.leave_cgroup(self.sandbox)
        write_exit(
            self.control, code, cancel_requested=self.deadline is not None, start_error=start_error, limit=self.limit
        )
        return code if 0 <= code < 256 else 128 + abs(code) % 128


def main(args: list[str]) -> int:
    """Launcher entry point: [--adopt PID:TICKS] CONTROL_DIR SIGNAL group|pid GRACE -- ARGV..."""
    adopted = None
    if args[:1] == ["--adopt"] and len(args) > 1:
        adopted, args = args[1].partition(":"), args[2:]
    if len(args) < 6 or args[4] != "--":
        sys.stderr.write("usage: [--adopt PID:TICKS] CONTROL_DIR SIGNAL group|pid GRACE -- ARGV...\n")
        return 2
    control, signum, target, grace, _, *argv = args
    launcher = _Launcher(Path(control), int(signum), target == "group", float(grace))
    if adopted is None:
        return launcher.run(argv)
    pid, _, ticks = adopted
    return launcher.adopt(int(pid), int(ticks) if ticks else None, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
