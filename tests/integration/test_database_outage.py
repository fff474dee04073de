"""A PostgreSQL outage, really: a dedicated server stopped and frozen (SIGSTOP) under a real
``flowdeck api`` and ``flowdeck worker``, driven by a keep-alive client.

Every call answers 503 with Retry-After in its door's shape, within the configured timeouts,
on the same connection; the worker keeps running; after the outage everything answers again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.network import free_port
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres
WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://outage"}
TIMEOUTS = {"FLOWDECK_DATABASE_CONNECT_TIMEOUT_SECONDS": "1", "FLOWDECK_DATABASE_STATEMENT_TIMEOUT_SECONDS": "1"}
BOUND = 1 + 1 + 1 + 5  # connect + statement + 1 s, and slack for a loaded machine (a CI run with Galaxy up)


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: the shared one is never stopped or frozen."""
    with PostgresServer() as server:
        try:
            yield server
        finally:
            if server.running:
                server.freeze(False)


def start(tmp_path: Path, command: str, env: dict[str, str], *argv: str) -> subprocess.Popen[str]:
    log = (tmp_path / f"{command}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", command, *argv],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture
def service(tmp_path: Path, pg: PostgresServer) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A flowdeck api and a flowdeck worker on ``pg``: (the API's URL, the worker)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(tmp_path / "data"),
            "FLOWDECK_DATABASE_URL": pg.create_database(),
            "FLOWDECK_BACKENDS": "demo",
            "FLOWDECK_WORKER_POLL_SECONDS": "0.2",
            "FLOWDECK_SYNC_MIN_SECONDS": "0.2",
            "FLOWDECK_DEMO_MIN_SECONDS": "2",
            "FLOWDECK_DEMO_MAX_SECONDS": "2",
            "FLOWDECK_DEMO_SUCCESS_RATE": "1",
            **TIMEOUTS,
        }
    )
    port = free_port()
    api = start(tmp_path, "api", env, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert api.poll() is None, (tmp_path / "api.log").read_text()
        assert time.monotonic() < deadline
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                break
        except httpx.TransportError:
            time.sleep(0.2)
    worker = start(tmp_path, "worker", env)
    while httpx.get(f"{url}/healthz", timeout=2).json().get("worker") != "ok":  # the outage finds it working
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline + 60, "the worker did not start"
        time.sleep(0.2)
    try:
        yield url, worker
    finally:
        for proc in (api, worker):
            proc.send_signal(signal.SIGINT)
        for proc in (api, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def client_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def calls(client: httpx.Client, url: str, run_id: str) -> dict[str, httpx.Response]:
    answers = {}
    for name, method, path, kwargs in (
        ("status", "GET", f"{WES}/runs/{run_id}/status", {}),
        ("run", "GET", f"{WES}/runs/{run_id}", {}),
        ("list", "GET", f"{WES}/runs", {}),
        ("submit", "POST", f"{WES}/runs", {"data": FORM}),
        ("jobs", "GET", "/jobs", {}),
        ("job", "GET", f"/jobs/{run_id}", {}),
    ):
        started = time.monotonic()
        answers[name] = client.request(method, f"{url}{path}", **kwargs)
        assert time.monotonic() - started < BOUND, name
    return answers


def assert_unavailable(answers: dict[str, httpx.Response], port: int) -> None:
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.text)
        assert answer.headers["Retry-After"].isdigit(), name
        assert client_port(answer) == port, f"{name}: the connection was closed"
        body = answer.json()
        if name in ("jobs", "job"):
            assert body["status"] == 503
            assert "database" in body["detail"]
        else:
            assert body["status_code"] == 503
            assert "database" in body["msg"]


def test_a_stopped_then_frozen_database_answers_503_on_the_same_connection(
    service: tuple[str, subprocess.Popen[str]], pg: PostgresServer
) -> None:
    url, worker = service
    with httpx.Client(timeout=30) as client:
        submitted = client.post(f"{url}{WES}/runs", data=FORM)
        assert submitted.status_code == 200, submitted.text
        run_id = submitted.json()["run_id"]
        port = client_port(submitted)

        pg.halt()
        assert_unavailable(calls(client, url, run_id), port)
        assert client.get(f"{url}/healthz").status_code == 503
        pg.resume_after_halt()
        assert {a.status_code for a in calls(client, url, run_id).values()} == {200}

        pg.freeze()
        try:
            assert_unavailable(calls(client, url, run_id), port)
            started = time.monotonic()
            assert client.get(f"{url}/healthz").status_code == 503
            assert time.monotonic() - started < BOUND
        finally:
            pg.freeze(False)
        deadline = time.monotonic() + 20
        while client.get(f"{url}{WES}/runs/{run_id}/status").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        assert {a.status_code for a in calls(client, url, run_id).values()} == {200}
        # The worker lived through it and failed nothing: the run submitted before it completes.
        deadline = time.monotonic() + 90
        while (state := client.get(f"{url}{WES}/runs/{run_id}/status").json()["state"]) != "COMPLETE":
            assert state in ("QUEUED", "INITIALIZING", "RUNNING"), state
            assert time.monotonic() < deadline, "the run did not complete after the outage"
            time.sleep(0.5)
    assert worker.poll() is None, "the worker ended during the outage"
