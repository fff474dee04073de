"""The Galaxy state mapping, and batched sync against bench/fake_galaxy.py: quick, no real Galaxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.fake_galaxy import FakeGalaxy

from flowdeck.backends.galaxy import GalaxyBackend
from flowdeck.backends.galaxy_state import run_state
from flowdeck.domain.runs import RunHandle, SyncReport
from flowdeck.domain.states import State
from flowdeck.settings import Settings


@pytest.mark.parametrize(
    ("invocation", "jobs", "all_scheduled", "expected"),
    [
        ("new", {}, False, State.INITIALIZING),
        ("ready", {"queued": 1}, False, State.RUNNING),
        ("scheduled", {"ok": 1, "running": 1}, True, State.RUNNING),
        ("scheduled", {"ok": 2}, True, State.COMPLETE),
        ("completed", {"ok": 1, "skipped": 1}, True, State.COMPLETE),
        ("scheduled", {"ok": 2}, False, State.RUNNING),  # steps still to schedule
        ("scheduled", {"error": 1, "running": 1}, True, State.RUNNING),  # let the rest settle
        ("scheduled", {"error": 1, "paused": 1}, True, State.EXECUTOR_ERROR),
        ("ready", {"ok": 1, "paused": 1}, False, State.EXECUTOR_ERROR),
        ("failed", {}, False, State.EXECUTOR_ERROR),
        ("cancelling", {"running": 1}, False, State.CANCELING),
        ("cancelled", {"deleting": 1}, False, State.CANCELING),
        ("cancelled", {"deleted": 1, "ok": 1}, False, State.CANCELED),
    ],
)
def test_run_state(invocation: str, jobs: dict[str, int], all_scheduled: bool, expected: State) -> None:
    assert run_state(invocation, jobs, all_scheduled).state is expected


@pytest.fixture
def fake() -> Iterator[FakeGalaxy]:
    with FakeGalaxy(invocations=300, latency=0.01, min_seconds=600, max_seconds=900).running() as server:
        yield server


def settle(handles: list[RunHandle], reports: list[SyncReport]) -> list[RunHandle]:
    by_run = {report.run_id: report for report in reports}
    out = []
    for handle in handles:
        report = by_run[handle.run_id]
        if report.state is not None:
            data = report.backend_data or handle.backend_data
            handle = RunHandle(handle.run_id, handle.backend_run_id, data, handle.workdir, report.state)
        out.append(handle)
    return out


def test_a_pass_over_unchanged_runs_costs_only_batched_calls(fake: FakeGalaxy, tmp_path: Path) -> None:
    backend = GalaxyBackend(Settings(galaxy_url=fake.url, galaxy_api_key=fake.api_key, data_dir=tmp_path))
    handles = fake.handles(tmp_path)
    handles = settle(handles, backend.sync(handles))  # first pass reads every run once
    fake.requests.clear()

    reports = backend.sync(handles)

    assert all(r.state is None and r.transient_error is None for r in reports)
    assert set(fake.requests) <= {"api/invocations", "api/histories/{id}/jobs_summary"}, fake.requests
    assert fake.requests["api/histories/{id}/jobs_summary"] == 2  # 300 runs, 150 per call


def test_galaxy_unreachable_is_transient_for_every_run(tmp_path: Path) -> None:
    with FakeGalaxy(invocations=5, latency=0).running() as fake:
        handles = fake.handles(tmp_path)
        url = fake.url
    backend = GalaxyBackend(Settings(galaxy_url=url, galaxy_api_key=fake.api_key, data_dir=tmp_path))

    reports = backend.sync(handles)

    assert len(reports) == 5
    assert all(r.state is None and "unreachable" in (r.transient_error or "") for r in reports), reports
    assert all(r.retry_after for r in reports)
