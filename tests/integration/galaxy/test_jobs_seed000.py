"""Seed 000 end to end against the real Galaxy, through the jobs API.

``POST /datasets`` registers the input, ``POST /jobs`` invokes the Galaxy workflow
(``{dataset_id, workflow_name, overwrite, parameters}`` exactly as the seed writes it),
the worker (its iterate/sync functions in-process, or ``flowdeck sync --once`` as cron
would run it) keeps the run in step with Galaxy, and every check reads flowdeck's own
API: job state, WES outputs downloaded through ``/runs/{id}/outputs/{n}``, task logs.
Datasets come from flowdeck's local storage (uploaded), from an ``s3://`` URI in a
bucket of moto's S3 server, and from flowdeck's S3 storage; Galaxy fetches the S3 ones
through pre-signed URLs flowdeck makes at dispatch.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from flowdeck.api.app import create_app
from flowdeck.db import runs as run_rows
from flowdeck.db import tasks as task_rows
from flowdeck.db.migrate import upgrade
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import State, is_terminal
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings
from tests.integration.galaxy.conftest import INPUT_TEXT
from tests.support.galaxy import GalaxyServer
from tests.support.network import moto_s3

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]

SORTED_UPPER = "APPLE\t2\nBANANA\t1\nCHERRY\t3\n"  # what flowdeck_sort_upper makes of INPUT_TEXT
WES = "/ga4gh/wes/v1"
FINAL = {"completed", "failed", "canceled"}
WRONG_KEY = "wrong-key-0123456789abcdef"


@dataclass
class Stack:
    """The app in-process on its own SQLite database, and a worker on the same services."""

    services: AppContext
    api: httpx.AsyncClient
    worker: Worker

    async def drive(self, job_id: str, until: set[str], rounds: int = 600) -> dict[str, Any]:
        """Worker iterations until the job's seed-000 state is in ``until`` (bounded by rounds, not time)."""
        for _ in range(rounds):
            await self.worker.iterate()
            job = await self.job(job_id)
            if job["state"] in until:
                return job
            await asyncio.sleep(0.5)
        raise AssertionError(f"job {job_id} never reached {until}: {await self.job(job_id)}")

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def task_states(self, job_id: str) -> dict[str, str]:
        async with self.services.db.read() as conn:
            return {row["name"]: row["state"] for row in await task_rows.page(conn, job_id, None, 100)}

    async def run_row(self, job_id: str) -> RunRecord:
        async with self.services.db.read() as conn:
            row = await run_rows.get(conn, job_id)
        assert row is not None
        return row


def galaxy_settings(tmp_path: Path, server: GalaxyServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backends": ["galaxy"],
        "galaxy_url": server.url,
        "galaxy_api_key": SecretStr(server.api_key),
        "galaxy_allowed_workflows": ["flowdeck_sleep", "flowdeck_fail"],
        "galaxy_timeout_seconds": 10,
        "dispatch_timeout_seconds": 60,
        "sync_min_seconds": 0.2,
        "sync_max_seconds": 2.0,
        "sync_concurrency": 4,
    }
    return make_settings(tmp_path, **{**values, **overrides})


@asynccontextmanager
async def open_stack(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Stack]:
    if migrate:
        upgrade(settings)
    services = AppContext.create(settings)
    assert "galaxy" in services.backends, "the galaxy backend is not enabled (bioblend missing?)"
    app = create_app(settings, services)
    worker = Worker(services)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield Stack(services, client, worker)
    finally:
        worker.pool.close()
        await services.close()


@pytest.fixture
async def stack(galaxy_server: GalaxyServer, tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack(galaxy_settings(tmp_path, galaxy_server)) as ready:
        yield ready


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's S3 server on loopback (Galaxy may fetch from 127.0.0.1: see scripts/galaxy/up.sh)."""
    with moto_s3() as url:
        yield url


async def upload(api: httpx.AsyncClient, text: str = INPUT_TEXT, name: str = "fruit.tsv") -> str:
    """A dataset uploaded into flowdeck's storage (multipart POST /datasets)."""
    files = {"file": (name, text.encode(), "text/tab-separated-values")}
    response = await api.post("/datasets", files=files, data={"name": name, "research_group": "lab"})
    assert response.status_code == 201, response.text
    assert response.json()["stored"] is True
    return str(response.json()["id"])


def seed_000(dataset_id: str, workflow_name: str = "flowdeck_sort_upper", **extra: Any) -> dict[str, Any]:
    """The seed's POST /jobs body, every field as the seed writes it."""
    return {"dataset_id": dataset_id, "workflow_name": workflow_name, "overwrite": False, "parameters": {}, **extra}


async def submit(api: httpx.AsyncClient, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await api.post("/jobs", json=body)
    assert response.status_code == status, response.text
    job: dict[str, Any] = response.json()
    return job


async def output_bytes(api: httpx.AsyncClient, job_id: str) -> dict[str, bytes]:
    """Every output file of the run, downloaded through flowdeck's WES outputs extension."""
    run = (await api.get(f"{WES}/runs/{job_id}")).json()
    assert run["state"] == "COMPLETE", run
    listing = (await api.get(f"{WES}/runs/{job_id}/outputs")).json()
    assert listing["files"], listing
    files: dict[str, bytes] = {}
    for item in listing["files"]:
        response = await api.get(item["url"])
        if response.status_code == 307:  # to the file in storage: flowdeck's own link, or S3's
            location = response.headers["location"]
            if location.startswith(str(api.base_url)):
                response = await api.get(location)
            else:  # a pre-signed S3 URL: outside the app, fetched as any client would
                async with httpx.AsyncClient() as outside:
                    response = await outside.get(location)
        assert response.status_code == 200, response.text
        assert len(response.content) == item["size"], item
        files[item["name"]] = response.content
    return files


async def assert_sorted_upper(api: httpx.AsyncClient, job_id: str) -> None:
    assert await output_bytes(api, job_id) == {"sorted_upper": SORTED_UPPER.encode()}


def galaxy_invocation_state(server: GalaxyServer, invocation_id: str) -> str:
    from bioblend.galaxy import GalaxyInstance

    state: str = GalaxyInstance(server.url, key=server.api_key).invocations.show_invocation(invocation_id)["state"]
    return state


# --- tests


async def test_uploaded_dataset_runs_to_completed_with_its_output_then_reruns(stack: Stack) -> None:
    api = stack.api
    dataset_id = await upload(api)

    job = await submit(api, seed_000(dataset_id))

    assert job["invocation_id"], job  # Galaxy answered within the inline dispatch
    assert job["state"] in {"queued", "in_progress"}, job
    assert job["dataset_id"] == dataset_id
    assert job["workflow_name"] == "flowdeck_sort_upper"
    done = await stack.drive(job["id"], FINAL)
    assert done["state"] == "completed", done
    await assert_sorted_upper(api, job["id"])
    tasks = (await api.get(f"{WES}/runs/{job['id']}/tasks")).json()["task_logs"]
    assert [t["name"] for t in tasks] == ["sort", "upper"], tasks
    assert all(t["exit_code"] == 0 for t in tasks), tasks
    listed = (await api.get("/jobs", params={"dataset_id": dataset_id})).json()
    assert [(j["id"], j["state"]) for j in listed["jobs"]] == [(job["id"], "completed")]

    # a rerun by overwrite, and one by POST /jobs/{id}/rerun: new runs, linked, also completing
    again = await submit(api, seed_000(dataset_id, overwrite=True))
    rerun = await api.post(f"/jobs/{job['id']}/rerun")
    assert rerun.status_code == 201, rerun.text
    assert again["rerun_of"] == job["id"]
    assert rerun.json()["rerun_of"] == job["id"]
    new_ids = [again["id"], rerun.json()["id"]]
    assert len({job["id"], *new_ids}) == 3
    for new_id in new_ids:
        final = await stack.drive(new_id, FINAL)
        assert final["state"] == "completed", final
        assert final["invocation_id"] not in (None, job["invocation_id"]), final
        await assert_sorted_upper(api, new_id)
    listed = (await api.get("/jobs", params={"dataset_id": dataset_id})).json()
    assert listed["total"] == 3


async def test_cancel_reaches_canceled_in_galaxy_and_flowdeck(stack: Stack, galaxy_server: GalaxyServer) -> None:
    dataset_id = await upload(stack.api)
    job = await submit(stack.api, seed_000(dataset_id, "flowdeck_sleep", parameters={"seconds": 300}))
    # Galaxy loses a job cancelled while its runner still dispatches it: cancel once it runs.
    for _ in range(600):
        await stack.worker.iterate()
        if (await stack.task_states(job["id"])).get("sleep") == "RUNNING":
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the sleep step never ran: {await stack.task_states(job['id'])}")

    response = await stack.api.post(f"/jobs/{job['id']}/cancel")

    assert response.status_code == 202, response.text
    assert response.json()["wes_state"] == "CANCELING"
    final = await stack.drive(job["id"], FINAL)
    assert final["state"] == "canceled", final
    assert galaxy_invocation_state(galaxy_server, job["invocation_id"]) == "cancelled"
    events = (await stack.api.get(f"/jobs/{job['id']}/events")).json()["events"]
    assert [e["to_state"] for e in events][-2:] == ["CANCELING", "CANCELED"], events
    assert all(is_terminal(State(s)) for s in (await stack.task_states(job["id"])).values())


def _cron_env(settings: Settings, server: GalaxyServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(settings.data_dir),
            "FLOWDECK_BACKENDS": "galaxy",
            "FLOWDECK_GALAXY_URL": server.url,
            "FLOWDECK_GALAXY_API_KEY": server.api_key,
            "FLOWDECK_GALAXY_ALLOWED_WORKFLOWS": "flowdeck_sleep,flowdeck_fail",
            "FLOWDECK_LOG_LEVEL": "WARNING",
        }
    )
    return env


async def test_failing_tool_ends_failed_with_stderr_kept_by_the_cron_sync(
    stack: Stack, galaxy_server: GalaxyServer
) -> None:
    """Synced only by ``flowdeck sync --once`` subprocesses, as a crontab would run it."""
    api = stack.api
    dataset_id = await upload(api)
    job = await submit(api, seed_000(dataset_id, "flowdeck_fail"))
    command = [str(Path(sys.executable).parent / "flowdeck"), "sync", "--once"]
    env = _cron_env(stack.services.settings, galaxy_server)

    for _ in range(120):
        result = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "checked" in result.stdout
        final = await stack.job(job["id"])
        if final["state"] in FINAL:
            break
        await asyncio.sleep(1)
    else:
        raise AssertionError(f"job {job['id']} never ended: {final}")

    assert final["state"] == "failed", final
    assert final["wes_state"] == "EXECUTOR_ERROR", final
    assert "deliberate failure" in (final["error_message"] or ""), final
    tasks = {t["name"]: t for t in (await api.get(f"{WES}/runs/{job['id']}/tasks")).json()["task_logs"]}
    assert tasks["fail"]["exit_code"] == 3, tasks
    stderr = await api.get(tasks["fail"]["stderr"], follow_redirects=True)
    assert stderr.status_code == 200, stderr.text
    assert "flowdeck_fail: deliberate failure" in stderr.text
    run = (await api.get(f"{WES}/runs/{job['id']}")).json()
    assert "deliberate failure" in (await api.get(run["run_log"]["stderr"], follow_redirects=True)).text


async def test_s3_datasets_reach_galaxy_through_presigned_urls(
    galaxy_server: GalaxyServer, tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An s3:// URI in any bucket flowdeck's credentials read, and a file uploaded into
    flowdeck's S3 storage: Galaxy has no S3 credentials, flowdeck hands it signed links."""
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    storage_bucket, data_bucket = f"store-{uuid4().hex[:8]}", f"data-{uuid4().hex[:8]}"
    settings = galaxy_settings(
        tmp_path, galaxy_server, storage="s3", s3_bucket=storage_bucket, s3_endpoint_url=moto_url
    )
    async with open_stack(settings) as stack:
        client = stack.services.storage.client  # type: ignore[union-attr]
        client.create_bucket(Bucket=storage_bucket)
        client.create_bucket(Bucket=data_bucket)
        client.put_object(Bucket=data_bucket, Key="inputs/fruit salad.tsv", Body=INPUT_TEXT.encode())
        registered = await stack.api.post(
            "/datasets",
            json={
                "name": "fruit",
                "research_group": "lab",
                "uri": f"s3://{data_bucket}/inputs/fruit salad.tsv",
            },
        )
        assert registered.status_code == 201, registered.text
        uploaded = await upload(stack.api)

        jobs = [await submit(stack.api, seed_000(d)) for d in (registered.json()["id"], uploaded)]

        for job in jobs:
            final = await stack.drive(job["id"], FINAL)
            assert final["state"] == "completed", final
            await assert_sorted_upper(stack.api, job["id"])
            # the run keeps the lasting s3:// name; the signed link lived only in the dispatch
            row = await stack.run_row(job["id"])
            assert row.dataset["uri"].startswith("s3://"), row.dataset
            assert "Signature" not in str(row.dataset) + str(row.backend_data)


async def test_wrong_api_key_is_a_clear_error_and_loses_no_run(
    stack: Stack, galaxy_server: GalaxyServer, tmp_path: Path
) -> None:
    dataset_id = await upload(stack.api)
    in_flight = await submit(stack.api, seed_000(dataset_id))
    bad_settings = stack.services.settings.model_copy(update={"galaxy_api_key": SecretStr(WRONG_KEY)})

    async with open_stack(bad_settings, migrate=False) as bad:
        refused = await bad.api.post("/jobs", json=seed_000(dataset_id))
        for _ in range(3):
            await bad.worker.sync_pass()

    assert refused.status_code == 502, refused.text
    problem = refused.json()
    assert "refused flowdeck's API key" in problem["detail"], problem
    assert WRONG_KEY not in refused.text
    failed = await stack.job(problem["id"])
    assert failed["state"] == "failed", failed
    assert "API key" in (failed["error_message"] or ""), failed
    assert WRONG_KEY not in str(failed)
    # the run in flight is untouched by a worker Galaxy refuses, and still ends truly
    row = await stack.run_row(in_flight["id"])
    assert row.state in {"INITIALIZING", "RUNNING"}, row.state
    assert "API key" in (row.last_check_error or ""), row.last_check_error
    assert WRONG_KEY not in (row.last_check_error or "")
    final = await stack.drive(in_flight["id"], FINAL)
    assert final["state"] == "completed", final
    await assert_sorted_upper(stack.api, in_flight["id"])
    listed = (await stack.api.get("/jobs", params={"dataset_id": dataset_id})).json()
    assert sorted(j["state"] for j in listed["jobs"]) == ["completed", "failed"]


async def test_galaxy_stopped_and_started_again_jobs_reach_their_true_state(
    stack: Stack, galaxy_server: GalaxyServer
) -> None:
    """A job running when Galaxy stops, and one submitted while it is down (202 queued,
    dispatched by the worker once Galaxy is back). Last in this module: it restarts Galaxy."""
    api = stack.api
    dataset_id = await upload(api)
    running = await submit(api, seed_000(dataset_id, "flowdeck_sleep", parameters={"seconds": 300}))
    for _ in range(600):
        await stack.worker.iterate()
        if (await stack.task_states(running["id"])).get("sleep") == "RUNNING":
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the sleep step never ran: {await stack.task_states(running['id'])}")

    galaxy_server.stop()
    try:
        queued = await submit(api, seed_000(dataset_id), status=202)
        assert queued["state"] == "queued", queued
        assert queued["invocation_id"] is None, queued
        for _ in range(3):
            await stack.worker.sync_pass()
            await stack.worker.iterate()
        assert (await stack.job(running["id"]))["state"] == "in_progress"
        assert (await stack.job(queued["id"]))["state"] == "queued"
        row = await stack.run_row(running["id"])
        assert "unreachable" in (row.last_check_error or ""), row.last_check_error
    finally:
        galaxy_server.start()

    dispatched = await stack.drive(queued["id"], FINAL)
    assert dispatched["state"] == "completed", dispatched
    assert dispatched["invocation_id"], dispatched
    await assert_sorted_upper(api, queued["id"])
    # Galaxy's local runner cannot adopt a job that ran while it was down: it fails it at
    # start-up, and flowdeck records exactly that.
    ended = await stack.drive(running["id"], FINAL)
    assert ended["state"] == "failed", ended
    assert "restarted" in (ended["error_message"] or ""), ended
