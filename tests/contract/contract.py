"""The backend contract: plain functions any backend's test calls.

Each function drives a backend directly (submit, then sync in a loop with a
timeout) and asserts what every backend owes the worker. A backend's test
builds a :class:`Subject` (how to make a backend and a run spec for it) and
calls the functions that apply to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.backends.base import Backend
from flowdeck.domain.runs import RunHandle, RunSpec, SyncReport
from flowdeck.domain.states import State, is_terminal

# (run_id, workflow_params, engine_parameters) -> RunSpec
SpecFactory = Callable[[str, dict[str, Any], dict[str, str]], RunSpec]


@dataclass
class Subject:
    """What the contract needs to know about one backend under test."""

    make_backend: Callable[[], Backend]
    make_spec: SpecFactory
    ok_params: dict[str, Any]
    fail_params: dict[str, Any]
    long_params: dict[str, Any]
    # Live processes of a run (local engines); None when the backend runs none here.
    processes: Callable[[RunHandle], list[int]] | None = None
    timeout: float = 120.0


def submit(backend: Backend, spec: RunSpec) -> RunHandle:
    """Validate and submit; the handle the worker would store."""
    backend.validate(spec)
    submitted = backend.submit(spec)
    assert submitted.backend_run_id
    return RunHandle(
        run_id=spec.run_id,
        backend_run_id=submitted.backend_run_id,
        backend_data=submitted.backend_data,
        workdir=spec.workdir,
        state=submitted.state,
    )


def wait_for(backend: Backend, handle: RunHandle, timeout: float, until: Callable[[SyncReport], bool]) -> SyncReport:
    """Sync every 0.2 s until ``until(report)`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        report = backend.sync([handle])[0]
        assert report.run_id == handle.run_id
        if until(report):
            return report
        assert report.state in {None, State.QUEUED, State.INITIALIZING, State.RUNNING, State.CANCELING}, report
        assert time.monotonic() < deadline, f"run {handle.run_id} still {report.state} after {timeout} s"
        time.sleep(0.2)


def wait_done(backend: Backend, handle: RunHandle, timeout: float) -> SyncReport:
    """Sync until the run is in a terminal state."""
    return wait_for(backend, handle, timeout, lambda r: r.state is not None and is_terminal(r.state))


def run_to_complete(subject: Subject, run_id: str = "ok") -> SyncReport:
    """A good run ends COMPLETE with its outputs listed, sized and checksummed inside its dir."""
    backend = subject.make_backend()
    spec = subject.make_spec(run_id, subject.ok_params, {})
    handle = submit(backend, spec)
    report = wait_done(backend, handle, subject.timeout)
    assert report.state is State.COMPLETE, report
    assert report.outputs, report
    assert report.tasks, report
    assert all(task.state is State.COMPLETE for task in report.tasks), report.tasks
    if subject.processes is not None:
        check_output_files(report, spec.workdir)
        assert subject.processes(handle) == []
    return report


def check_output_files(report: SyncReport, workdir: Path) -> None:
    """Every listed output file is inside the run dir, with the right size and sha256."""
    assert report.output_files, report
    root = workdir.resolve()
    for output in report.output_files:
        path = Path(output.location)
        assert path.resolve().is_relative_to(root), output
        data = path.read_bytes()
        assert output.size == len(data)
        assert output.checksum == f"sha256:{hashlib.sha256(data).hexdigest()}"


def failing_step(subject: Subject, run_id: str = "fail", stderr_text: str | None = None) -> SyncReport:
    """A failing step ends EXECUTOR_ERROR with a reason and the failing task's stderr readable."""
    backend = subject.make_backend()
    spec = subject.make_spec(run_id, subject.fail_params, {})
    handle = submit(backend, spec)
    report = wait_done(backend, handle, subject.timeout)
    assert report.state is State.EXECUTOR_ERROR, report
    assert report.reason, report
    failed = [task for task in report.tasks or [] if task.state is State.EXECUTOR_ERROR]
    assert failed, report.tasks
    if stderr_text is not None:
        stderr = Path(failed[-1].stderr_path or "")
        assert stderr.resolve().is_relative_to(spec.workdir.resolve()), failed[-1]
        assert stderr_text in stderr.read_text(), stderr
    if subject.processes is not None:
        assert subject.processes(handle) == []
    return report


def cancel_long_step(subject: Subject, run_id: str = "cancel", running_task: str | None = None) -> SyncReport:
    """A cancelled long run ends CANCELED and leaves no process behind."""
    backend = subject.make_backend()
    handle = submit(backend, subject.make_spec(run_id, subject.long_params, {}))
    if running_task is not None:
        wait_for(backend, handle, subject.timeout, lambda r: _task_running(r, running_task))
    result = backend.cancel(handle)
    if result.confirmed:  # the engine stopped at once: the worker itself records CANCELED
        report = SyncReport(run_id=handle.run_id, state=State.CANCELED)
    else:
        report = wait_done(backend, handle, subject.timeout)
    assert report.state is State.CANCELED, report
    assert all(is_terminal(task.state) for task in report.tasks or []), report.tasks
    if subject.processes is not None:
        assert subject.processes(handle) == [], "processes of the cancelled run are left"
    return report


def _task_running(report: SyncReport, name: str) -> bool:
    return any(task.name == name and task.state is State.RUNNING for task in report.tasks or [])


def unknown_handle(subject: Subject, tmp: Path) -> SyncReport:
    """A handle whose run was never started here (or whose dir is gone) is SYSTEM_ERROR."""
    backend = subject.make_backend()
    handle = RunHandle(
        run_id="ghost", backend_run_id="ghost", backend_data={}, workdir=tmp / "ghost", state=State.RUNNING
    )
    report = backend.recover(handle)
    assert report.state is State.SYSTEM_ERROR, report
    assert report.reason
    return report


def vanished(subject: Subject, run_id: str = "vanish") -> SyncReport:
    """A run whose processes all died without an exit record ends SYSTEM_ERROR on recover."""
    assert subject.processes is not None
    backend = subject.make_backend()
    handle = submit(backend, subject.make_spec(run_id, subject.long_params, {}))
    wait_for(backend, handle, subject.timeout, lambda r: bool(subject.processes and len(subject.processes(handle)) > 1))
    for pid in subject.processes(handle):  # as if the machine went down: no one writes anything
        os.kill(pid, signal.SIGKILL)
    fresh = subject.make_backend()
    deadline = time.monotonic() + 10
    report = fresh.recover(handle)
    while report.state is State.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
        report = fresh.recover(handle)
    assert report.state is State.SYSTEM_ERROR, report
    assert report.reason
    assert "vanished" in report.reason
    return report


def worker_killed(subject: Subject, backend_name: str, settings_json: str, run_id: str = "orphan") -> SyncReport:
    """A worker SIGKILLed right after submitting: a fresh backend's recover() reaches the true end."""
    spec = subject.make_spec(run_id, subject.ok_params, {})
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from flowdeck.backends.registry import load_class\n"
        "from flowdeck.domain.runs import RunSpec\n"
        "from flowdeck.settings import Settings\n"
        "args = json.loads(sys.argv[1])\n"
        "backend = load_class(args['backend'])(Settings.model_validate_json(args['settings']))\n"
        "spec = RunSpec(**{**args['spec'], 'workdir': Path(args['spec']['workdir']),"
        " 'attachments_dir': Path(args['spec']['attachments_dir'])})\n"
        "submitted = backend.submit(spec)\n"
        "print(json.dumps({'id': submitted.backend_run_id, 'data': submitted.backend_data}), flush=True)\n"
        "time.sleep(600)\n"
    )
    fields = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(spec).items()}
    payload = json.dumps({"backend": backend_name, "settings": settings_json, "spec": fields})
    child = subprocess.Popen([sys.executable, "-c", code, payload], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    submitted = json.loads(child.stdout.readline())
    child.kill()  # SIGKILL: the worker dies mid-run, nothing of it runs again
    child.wait()
    handle = RunHandle(
        run_id=spec.run_id,
        backend_run_id=submitted["id"],
        backend_data=submitted["data"],
        workdir=spec.workdir,
        state=State.RUNNING,
    )
    fresh = subject.make_backend()
    report = fresh.recover(handle)
    # a remote engine may still be starting the run
    assert report.state in {State.INITIALIZING, State.RUNNING, State.COMPLETE}, report
    report = wait_done(fresh, handle, subject.timeout)
    assert report.state is State.COMPLETE, report
    assert report.exit_code == 0
    return report
