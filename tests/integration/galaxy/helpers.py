"""Driving a Galaxy backend in tests: submit, then sync until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunHandle, RunSpec, SyncReport
from flowdeck.domain.states import State, is_terminal


def submit(backend: GalaxyBackend, spec: RunSpec) -> RunHandle:
    backend.validate(spec)
    submitted = backend.submit(spec)
    return RunHandle(spec.run_id, submitted.backend_run_id, submitted.backend_data, spec.workdir, submitted.state)


def advance(handle: RunHandle, report: SyncReport) -> RunHandle:
    """The handle the worker would hold after persisting ``report``."""
    if report.state is None:
        return handle
    data = report.backend_data if report.backend_data is not None else handle.backend_data
    return RunHandle(handle.run_id, handle.backend_run_id, data, handle.workdir, report.state)


def sync_until(
    backend: GalaxyBackend, handle: RunHandle, until: Callable[[SyncReport], bool], timeout: float = 180
) -> tuple[RunHandle, SyncReport]:
    """Sync like the worker does (carrying backend_data forward) until ``until(report)``."""
    deadline = time.monotonic() + timeout
    last: SyncReport | None = None
    while time.monotonic() < deadline:
        report = backend.sync([handle])[0]
        handle = advance(handle, report)
        last = report if report.state is not None else last or report
        if until(report):
            return handle, report
        time.sleep(0.5)
    raise AssertionError(f"run {handle.run_id} did not get there in {timeout}s; last report {last}")


def wait_terminal(backend: GalaxyBackend, handle: RunHandle, timeout: float = 180) -> SyncReport:
    return sync_until(backend, handle, lambda r: r.state is not None and is_terminal(r.state), timeout)[1]


def task_running(name: str) -> Callable[[SyncReport], bool]:
    return lambda r: any(t.name == name and t.state is State.RUNNING for t in r.tasks or [])
