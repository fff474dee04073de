"""``flowdeck up`` as a user starts it: a subprocess, driven over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.network import free_port

WES = "/ga4gh/wes/v1"


def flowdeck_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(tmp_path / "data"),
            "FLOWDECK_BACKENDS": "demo",
            "FLOWDECK_DEMO_MIN_SECONDS": "0.5",
            "FLOWDECK_DEMO_SUCCESS_RATE": "1",
            "FLOWDECK_DEMO_MAX_SECONDS": "1",
            "FLOWDECK_SYNC_MIN_SECONDS": "0.2",
            "FLOWDECK_WORKER_POLL_SECONDS": "0.1",
        }
    )
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "up", "--port", str(port)],
        env=flowdeck_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("flowdeck up did not answer within 60 s")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stdout.read().decode() if proc.stdout else ""


def follow(url: str, run_id: str, until: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = str(httpx.get(f"{url}{WES}/runs/{run_id}/status").json()["state"])
        if state in until:
            return state
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not reach {until}")


def submit(url: str, **engine: str) -> str:
    form = {
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://e2e",
        "workflow_engine_parameters": json.dumps(engine),
        "tags": json.dumps({"suite": "e2e"}),
    }
    response = httpx.post(f"{url}{WES}/runs", data=form, files={"workflow_attachment": ("README", b"e2e")})
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


@pytest.mark.slow
def test_runs_complete_fail_and_cancel_through_flowdeck_up(server: str) -> None:
    ok = submit(server, outcome="success", duration_seconds="0.5")
    bad = submit(server, outcome="failure", duration_seconds="0.5")
    long = submit(server, duration_seconds="600")
    assert follow(server, ok, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "COMPLETE"
    assert follow(server, bad, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "EXECUTOR_ERROR"
    follow(server, long, {"RUNNING"})
    assert httpx.post(f"{server}{WES}/runs/{long}/cancel").status_code == 200
    assert follow(server, long, {"CANCELED", "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "CANCELED"
    health = httpx.get(f"{server}/healthz").json()
    assert health["worker"] == "ok"
    metrics = httpx.get(f"{server}/metrics").text
    assert 'flowdeck_runs{state="COMPLETE"} 1.0' in metrics
    info = httpx.get(f"{server}{WES}/service-info").json()
    assert info["system_state_counts"]["CANCELED"] == 1


async def _through_app(settings: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    from flowdeck.api.app import create_app

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.slow
def test_sync_once_for_cron(tmp_path: Path) -> None:
    """Runs accepted by an API with no worker are carried to their end by `flowdeck sync --once`."""
    from flowdeck.db.migrate import upgrade
    from flowdeck.settings import Settings

    env = flowdeck_env(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", backends=["demo"])
    upgrade(settings)
    form = {
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://cron",
        "workflow_engine_parameters": json.dumps({"duration_seconds": "0"}),
    }
    run_id = asyncio.run(_through_app(settings, "POST", f"{WES}/runs", data=form)).json()["run_id"]
    command = [sys.executable, "-m", "flowdeck.cli.main", "sync", "--once"]
    first = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert "checked" in first.stdout
    subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    status = asyncio.run(_through_app(settings, "GET", f"{WES}/runs/{run_id}/status")).json()
    assert status["state"] == "COMPLETE"


@pytest.mark.slow
def test_cli_client_submits_watches_and_lists(server: str, tmp_path: Path) -> None:
    env = {**os.environ, "FLOWDECK_SERVER": server}
    base = [sys.executable, "-m", "flowdeck.cli.main", "runs"]
    params = tmp_path / "params.json"
    params.write_text('{"sample": "S1"}')
    submitted = subprocess.run(
        [
            *base,
            "submit",
            "--type",
            "DEMO",
            "--type-version",
            "1.0",
            "--url",
            "demo://cli",
            "--params",
            str(params),
            "--tag",
            "who=cli",
            "--watch",
            "--interval",
            "0.2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    run_id = submitted.stdout.splitlines()[0]
    assert "COMPLETE" in submitted.stdout.splitlines()[-1]
    listed = subprocess.run([*base, "list"], env=env, capture_output=True, text=True, timeout=30, check=True)
    assert run_id in listed.stdout
    missing = subprocess.run([*base, "get", "nope"], env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert "404: run nope not found" in missing.stderr
