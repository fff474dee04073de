"""Syncing Galaxy tool requests against the simulated Galaxy (bench/fake_galaxy.py): how many
calls a pass costs, and that a request Galaxy failed or is still expanding is never taken for a
finished one. Quick, no real Galaxy; request counts come from the fake, nothing is timed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from bench.fake_galaxy import FakeToolGalaxy

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunHandle, SyncReport
from flowdeck.domain.states import State
from flowdeck.settings import Settings
from tests.integration.galaxy.helpers import advance

JOBS = "api/jobs"
REQUEST = "api/tool_requests/{id}"


def make_fake(started_ago: float, seconds: float = 100) -> FakeToolGalaxy:
    # every request runs `seconds` with two jobs: `new` (no job) for its first tenth, both `ok` at the end
    return FakeToolGalaxy(
        invocations=6, latency=0.0, min_seconds=seconds, max_seconds=seconds, fail_share=0.0, started_ago=started_ago
    )


@pytest.fixture(scope="module")
def finished() -> Iterator[FakeToolGalaxy]:
    with make_fake(started_ago=200).running() as fake:
        yield fake


@pytest.fixture(scope="module")
def fresh() -> Iterator[FakeToolGalaxy]:
    with make_fake(started_ago=0, seconds=36_000).running() as fake:
        yield fake


def backend_for(fake: FakeToolGalaxy, tmp_path: Path) -> GalaxyBackend:
    settings = Settings(data_dir=tmp_path, galaxy_url=fake.url, galaxy_api_key=fake.api_key, sync_concurrency=4)
    return GalaxyBackend(settings)


def sync(backend: GalaxyBackend, fake: FakeToolGalaxy, handles: list[RunHandle]) -> list[SyncReport]:
    fake.reset_counts()
    return backend.sync(handles)


def running(fake: FakeToolGalaxy, tmp_path: Path, count: int) -> list[RunHandle]:
    return [replace(h, state=State.RUNNING) for h in fake.tool_handles(tmp_path)[:count]]


def test_an_expanded_request_costs_one_call_a_pass(tmp_path: Path) -> None:
    # 20 s in: past `new`, both jobs made and running or queued
    with make_fake(started_ago=20).running() as fake:
        backend = backend_for(fake, tmp_path)
        handles = running(fake, tmp_path, 4)

        first = sync(backend, fake, handles)
        assert fake.requests == {JOBS: 4}  # jobs present: Galaxy submitted it, no state read
        assert {r.state for r in first} == {State.RUNNING}
        assert all("jobs: 1 queued, 1 running" in str(r.reason) for r in first), first

        steady = sync(backend, fake, [advance(h, r) for h, r in zip(handles, first, strict=True)])
        assert fake.requests == {JOBS: 4}
        assert {r.state for r in steady} == {None}  # nothing changed, nothing to write


def test_a_request_without_jobs_has_its_state_read(fresh: FakeToolGalaxy, tmp_path: Path) -> None:
    reports = sync(backend_for(fresh, tmp_path), fresh, running(fresh, tmp_path, 3)[:3])

    assert fresh.requests == {JOBS: 3, REQUEST: 3}
    assert {r.state for r in reports} == {State.INITIALIZING}


def test_a_failed_request_without_jobs_fails_with_galaxys_message(fresh: FakeToolGalaxy, tmp_path: Path) -> None:
    handle = running(fresh, tmp_path, 6)[5]
    fresh.failed_requests[str(handle.backend_run_id)] = "parameter 'column' is not an integer"

    report = sync(backend_for(fresh, tmp_path), fresh, [handle])[0]

    assert report.state == State.EXECUTOR_ERROR
    assert report.reason == "Galaxy failed the tool request: parameter 'column' is not an integer"


def test_finished_jobs_end_the_run_only_once_galaxy_confirms_the_request(
    finished: FakeToolGalaxy, tmp_path: Path
) -> None:
    backend = backend_for(finished, tmp_path)
    ok, failed, expanding = running(finished, tmp_path, 3)
    finished.failed_requests[str(failed.backend_run_id)] = "failed while expanding"
    finished.expanding[str(expanding.backend_run_id)] = 1

    reports = {r.run_id: r for r in sync(backend, finished, [ok, failed, expanding])}

    # every job listed has ended: each request's state is read once before the run may end
    assert finished.requests[REQUEST] == 3
    assert reports[ok.run_id].state == State.COMPLETE
    assert reports[ok.run_id].backend_data is not None
    assert reports[ok.run_id].backend_data["galaxy_request"] == {"x": 1}  # as Galaxy stored it
    assert reports[failed.run_id].state == State.EXECUTOR_ERROR
    assert "failed while expanding" in str(reports[failed.run_id].reason)
    assert reports[expanding.run_id].state == State.RUNNING  # its other job is still to come
    assert "expanding" in str(reports[expanding.run_id].reason)

    del finished.expanding[str(expanding.backend_run_id)]
    later = sync(backend, finished, [advance(expanding, reports[expanding.run_id])])[0]
    assert later.state == State.COMPLETE
    assert [t.name for t in later.tasks or []] == ["tool0 #1", "tool1 #2"]


def test_sync_reads_go_through_the_environments_proxy_and_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib3

    from flowdeck.backends.galaxy.client import GalaxyApi

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert not isinstance(GalaxyApi("https://galaxy.example.org", "k", 5)._pool, urllib3.ProxyManager)

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    proxied = GalaxyApi("https://galaxy.example.org", "k", 5)
    assert isinstance(proxied._pool, urllib3.ProxyManager)
    assert proxied._pool.proxy is not None
    assert proxied._pool.proxy.host == "proxy.example.org"
    assert proxied._pool.connection_pool_kw["ca_certs"] == "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("NO_PROXY", "galaxy.example.org")
    assert not isinstance(GalaxyApi("https://galaxy.example.org", "k", 5)._pool, urllib3.ProxyManager)
