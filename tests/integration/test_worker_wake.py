"""LISTEN/NOTIFY: a `flowdeck worker` in another process takes up a new run, and carries out a
cancel, at once, although its poll interval (60 s) is far longer than the test may wait."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flowdeck.db import workers as worker_rows
from flowdeck.services.core.context import AppContext
from tests.support.processes import stop

pytestmark = pytest.mark.postgres
WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://wake"}
POLL = 60.0  # the worker's poll interval: waiting on it would fail every wait below
WAIT = 10.0  # the longest the test waits for the worker to act (a loaded machine included)


@pytest.fixture
async def worker(services: AppContext, tmp_path: Path) -> AsyncIterator[subprocess.Popen[str]]:
    """``flowdeck worker`` on the test's PostgreSQL; nothing is ever due for it but what wakes it."""
    settings = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(settings.data_dir),
            "FLOWDECK_DATABASE_URL": settings.resolved_database_url,
            "FLOWDECK_BACKENDS": "demo",
            "FLOWDECK_WORKER_POLL_SECONDS": str(POLL),
            "FLOWDECK_SYNC_MIN_SECONDS": str(POLL),  # a running run is not checked while the test runs
            "FLOWDECK_SYNC_MAX_SECONDS": str(2 * POLL),
            "FLOWDECK_DEMO_MIN_SECONDS": "600",
            "FLOWDECK_DEMO_MAX_SECONDS": "600",
        }
    )
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "worker"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        await _registered(services, proc, tmp_path)
        yield proc
    finally:
        stop(proc, timeout=20)


async def _registered(services: AppContext, proc: subprocess.Popen[str], tmp_path: Path) -> None:
    for _ in range(300):
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
        async with services.db.read() as conn:
            if await worker_rows.latest_heartbeat(conn) is not None:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not start")


async def state_within(api: httpx.AsyncClient, run_id: str, wanted: set[str], seconds: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    state = ""
    while loop.time() < deadline:
        state = (await api.get(f"{WES}/runs/{run_id}/status")).json()["state"]
        if state in wanted:
            return str(state)
        await asyncio.sleep(0.05)
    return state


@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)
async def test_other_process_worker_is_woken_by_new_runs_and_cancels(
    api: httpx.AsyncClient, worker: subprocess.Popen[str]
) -> None:
    first = (await api.post(f"{WES}/runs", data=FORM)).json()["run_id"]
    assert await state_within(api, first, {"RUNNING"}, WAIT) == "RUNNING"
    await asyncio.sleep(1)  # the worker has gone idle: only a wake-up brings it back before POLL
    second = (await api.post(f"{WES}/runs", data=FORM)).json()["run_id"]
    assert await state_within(api, second, {"RUNNING"}, WAIT) == "RUNNING"
    await asyncio.sleep(1)
    assert (await api.post(f"{WES}/runs/{second}/cancel")).status_code == 200
    assert await state_within(api, second, {"CANCELED"}, WAIT) == "CANCELED"
    assert worker.poll() is None
