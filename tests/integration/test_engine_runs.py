"""Real CWL runs through the whole service: WES submit → worker → cwltool → WES reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from flowdeck.backends.registry import load_class
from flowdeck.services.core.context import AppContext
from flowdeck.worker.loop import Worker

WES = "/ga4gh/wes/v1"
CWL = Path(__file__).resolve().parents[1] / "workflows" / "cwl" / "two_step.cwl"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not load_class("cwltool").available(), reason="cwltool is not installed"),
]


@pytest.fixture
def cwl_services(services: AppContext) -> AppContext:
    """The suite's services with the cwltool backend enabled."""
    from flowdeck.backends.registry import Registry

    services.settings.backends = ["demo", "cwltool"]
    services.backends = Registry(services.settings)
    return services


async def submit(api: httpx.AsyncClient, **params: object) -> str:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "two_step.cwl",
        "workflow_params": json.dumps({"message": "hello flowdeck", **params}),
    }
    response = await api.post(
        f"{WES}/runs", data=form, files={"workflow_attachment": ("two_step.cwl", CWL.read_bytes())}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def follow(api: httpx.AsyncClient, worker: Worker, run_id: str, until: set[str], seconds: float = 90) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await worker.iterate()
        state = str((await api.get(f"{WES}/runs/{run_id}/status")).json()["state"])
        if state in until:
            return state
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} did not reach {until}")


async def test_cwl_run_completes_with_outputs_downloadable(api: httpx.AsyncClient, cwl_services: AppContext) -> None:
    run_id = await submit(api)
    assert await follow(api, Worker(cwl_services), run_id, TERMINAL) == "COMPLETE"
    listing = (await api.get(f"{WES}/runs/{run_id}/outputs")).json()
    shouted = next(f for f in listing["files"] if "shouted" in f["name"])
    assert shouted["checksum"].startswith("sha256:")
    content = await api.get(shouted["url"], follow_redirects=True)  # a 307 to storage
    assert content.text == "HELLO FLOWDECK\n"
    tasks = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()["task_logs"]
    assert {t["name"] for t in tasks} >= {"greet", "shout"}
    assert all(t["exit_code"] == 0 for t in tasks)


async def test_failing_step_is_executor_error_with_its_stderr(api: httpx.AsyncClient, cwl_services: AppContext) -> None:
    run_id = await submit(api, fail=True)
    assert await follow(api, Worker(cwl_services), run_id, TERMINAL) == "EXECUTOR_ERROR"
    tasks = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()["task_logs"]
    shout = next(t for t in tasks if t["name"] == "shout")
    assert shout["exit_code"] == 3
    stderr = await api.get(shout["stderr"], follow_redirects=True)
    assert "shout failed on purpose" in stderr.text


async def test_cancel_ends_canceled(api: httpx.AsyncClient, cwl_services: AppContext) -> None:
    run_id = await submit(api, sleep_seconds=300)
    worker = Worker(cwl_services)
    assert await follow(api, worker, run_id, {"RUNNING"} | TERMINAL) == "RUNNING"
    await api.post(f"{WES}/runs/{run_id}/cancel")
    assert await follow(api, worker, run_id, TERMINAL, seconds=60) == "CANCELED"


async def test_admission_control_keeps_the_rest_queued(api: httpx.AsyncClient, cwl_services: AppContext) -> None:
    cwl_services.settings.max_local_runs = 1
    first, second = await submit(api, sleep_seconds=300), await submit(api)
    worker = Worker(cwl_services)
    await worker.iterate()
    await worker.iterate()
    states = [(await api.get(f"{WES}/runs/{r}/status")).json()["state"] for r in (first, second)]
    assert states[1] == "QUEUED"
    assert states[0] in {"INITIALIZING", "RUNNING"}
    await api.post(f"{WES}/runs/{first}/cancel")
    assert await follow(api, worker, first, TERMINAL, seconds=60) == "CANCELED"
    assert await follow(api, worker, second, TERMINAL) == "COMPLETE"


async def test_engine_exit_is_noticed_without_waiting_for_a_poll(
    api: httpx.AsyncClient, cwl_services: AppContext
) -> None:
    """The worker that launched an engine checks its run when the engine ends, not at the next poll."""
    settings = cwl_services.settings
    settings.worker_poll_seconds = settings.sync_min_seconds = settings.sync_max_seconds = 3600
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(cwl_services).run(stop))
    try:
        run_id = await submit(api)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # a guard only: with the polls above, an hour is the alternative
        while (state := (await api.get(f"{WES}/runs/{run_id}/status")).json()["state"]) not in TERMINAL:
            assert loop.time() < deadline, f"run {run_id} still {state}"
            await asyncio.sleep(0.2)
        assert state == "COMPLETE"
    finally:
        stop.set()
        await task
