"""Results through storage: real cwltool, Snakemake and miniwdl runs end, the worker's run folder is
removed, and every output, every log and the outputs archive still download through the API's links
(local storage's signed URLs, and S3's pre-signed ones against moto's server).

The engines run on SQLite here; the ``results`` column's round trip on PostgreSQL and MariaDB is
test_delete_purge's CWL run (its stored keys are read back and deleted).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.backends.registry import Registry, load_class
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import S3Storage, open_storage
from flowdeck.services.runs.attachments import run_folder
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import TERMINAL, WES, follow
from tests.integration.test_wes_api import submit
from tests.support.network import moto_s3

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
ENGINES = {
    "cwltool": ("CWL", "v1.2", WORKFLOWS / "cwl" / "two_step.cwl"),
    "snakemake": ("SMK", "9", WORKFLOWS / "snakemake" / "Snakefile"),
    "miniwdl": ("WDL", "1.0", WORKFLOWS / "wdl" / "two_step.wdl"),
}
pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_s3() as url:
        yield url


def _engines(services: AppContext, engine: str, *, any_database: bool = False) -> AppContext:
    if not load_class(engine).available():
        pytest.skip(f"{engine} is not installed")
    if not any_database and not services.settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("engine runs here are on SQLite; test_delete_purge runs one on each database")
    services.settings.backends = ["demo", engine]
    services.backends = Registry(services.settings)
    return services


async def run_to_end(api: httpx.AsyncClient, services: AppContext, engine: str, message: str = "hello store") -> str:
    wf_type, version, workflow = ENGINES[engine]
    form = {
        "workflow_type": wf_type,
        "workflow_type_version": version,
        "workflow_url": workflow.name,
        "workflow_params": json.dumps({"message": message}),
    }
    files = {"workflow_attachment": (workflow.name, workflow.read_bytes())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    assert response.status_code == 200, response.text
    run_id = str(response.json()["run_id"])
    assert await follow(api, Worker(services), run_id, TERMINAL, seconds=180) == "COMPLETE"
    return run_id


async def fetch(api: httpx.AsyncClient, url: str) -> bytes:
    """A link as a remote client follows it: the API's redirect, then the store's signed URL."""
    first = await api.get(url)
    assert first.status_code == 307, first.text
    location = first.headers["location"]
    if location.startswith("http://testserver/"):
        second = await api.get(location)
        assert second.status_code == 200, second.text
        return second.content
    return await asyncio.to_thread(lambda: urllib.request.urlopen(location).read())  # S3, straight from the store


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _check_downloads(api: httpx.AsyncClient, run_id: str, message: bytes = b"HELLO STORE\n") -> dict[str, Any]:
    log = (await api.get(f"{WES}/runs/{run_id}")).json()
    outputs = log["outputs"]
    files = [f for entry in outputs.values() for f in entry["files"]]
    assert files, outputs
    contents = {}
    for item in files:
        data = await fetch(api, item["url"])
        assert (len(data), _sha256(data)) == (item["size"], item["checksum"])
        contents[item["name"]] = data
    assert message in contents.values()
    for url in [log["run_log"].get("stdout"), log["run_log"].get("stderr")]:
        if url:
            await fetch(api, url)
    tasks = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()["task_logs"]
    assert len(tasks) >= 2
    for task in tasks:
        assert task.get("stdout") or task.get("stderr"), task
        for url in [task.get("stdout"), task.get("stderr")]:
            if url:
                await fetch(api, url)
    archive = await api.get(f"{WES}/runs/{run_id}/outputs.zip")
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert {name: zipped.read(name) for name in zipped.namelist()} == {
            f"{run_id}/{name}": data for name, data in contents.items()
        }
    return log


async def _check_ui_and_crate(api: httpx.AsyncClient, run_id: str, message: bytes = b"HELLO STORE\n") -> None:
    """The UI run page's output and log links and the RO-Crate read the stored results too."""
    page = (await api.get(f"/ui/runs/{run_id}")).text
    outputs = re.findall(rf'href="(/ui/runs/{run_id}/outputs/\d+)"', page)
    logs = re.findall(rf'href="(/ui/runs/{run_id}/(?:tasks/[^/"]+/)?logs/std(?:out|err))"', page)
    assert outputs, page
    assert any("/tasks/" in url for url in logs), page
    assert message in [await fetch(api, url) for url in outputs]
    for url in logs:
        await fetch(api, url)
    crate = await api.get(f"{WES}/runs/{run_id}/ro-crate")
    assert crate.status_code == 200, crate.text
    with zipfile.ZipFile(io.BytesIO(crate.content)) as zipped:
        assert message in [zipped.read(n) for n in zipped.namelist() if n.startswith("outputs/")]


@pytest.mark.parametrize("engine", sorted(ENGINES))
async def test_every_output_and_log_downloads_with_the_run_folder_gone(
    api: httpx.AsyncClient, services: AppContext, engine: str
) -> None:
    run_id = await run_to_end(api, _engines(services, engine), engine)
    run_folder(services.runs_dir, run_id).remove()  # as if the worker were another host
    log = await _check_downloads(api, run_id)
    single = next(entry for entry in log["outputs"].values() if len(entry["files"]) == 1)
    assert {"url", "size", "checksum", "name", "value", "files"} <= single.keys()
    listing = (await api.get(f"{WES}/runs/{run_id}/outputs")).json()
    assert listing["outputs"] == log["outputs"]
    job = (await api.get(f"/jobs/{run_id}")).json()
    assert job["outputs"] == log["outputs"]
    await _check_ui_and_crate(api, run_id)


async def test_outputs_go_to_s3_and_download_from_its_presigned_urls(
    api: httpx.AsyncClient, services: AppContext, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    settings = services.settings
    settings.storage, settings.s3_bucket, settings.s3_endpoint_url = "s3", f"r{time.time_ns()}", moto_url
    store = open_storage(settings)
    assert isinstance(store, S3Storage)
    store.client.create_bucket(Bucket=settings.s3_bucket)
    services.storage = store
    run_id = await run_to_end(api, _engines(services, "cwltool"), "cwltool")
    run_folder(services.runs_dir, run_id).remove()
    log = await _check_downloads(api, run_id)
    await _check_ui_and_crate(api, run_id)
    url = log["outputs"]["shouted"]["url"]
    assert (await api.get(url)).headers["location"].startswith(moto_url)
    listed = store.client.list_objects_v2(Bucket=settings.s3_bucket, Prefix=f"{settings.s3_prefix}results/{run_id}/")
    assert len(listed["Contents"]) >= 4  # two outputs and the tasks' logs


async def test_archive_of_a_run_that_has_not_ended_is_409(api: httpx.AsyncClient) -> None:
    run_id = await submit(api)
    answer = await api.get(f"{WES}/runs/{run_id}/outputs.zip")
    assert answer.status_code == 409
    assert "has not ended" in answer.text


async def test_logs_of_a_running_run_are_copied_to_storage_as_it_runs(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    _engines(services, "cwltool")
    services.settings.live_log_seconds = 0.2
    response = await api.post(
        f"{WES}/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": "two_step.cwl",
            "workflow_params": json.dumps({"message": "slow", "sleep_seconds": 12}),
        },
        files={"workflow_attachment": ("two_step.cwl", ENGINES["cwltool"][2].read_bytes())},
    )
    run_id = response.json()["run_id"]
    worker = Worker(services)
    stderr = b""
    for _ in range(300):
        await worker.iterate()
        log = (await api.get(f"{WES}/runs/{run_id}")).json()
        url = log["run_log"].get("stderr")
        if log["state"] == "RUNNING" and url and (await api.get(url)).status_code == 307:
            stderr = await fetch(api, url)
            if b"[step shout] start" in stderr:
                break
        await asyncio.sleep(0.1)
    assert b"[step shout] start" in stderr  # cwltool's own log, read from storage while shout sleeps
    assert (await api.post(f"{WES}/runs/{run_id}/cancel")).status_code == 200
    assert await follow(api, worker, run_id, TERMINAL) == "CANCELED"
    run_folder(services.runs_dir, run_id).remove()
    log = (await api.get(f"{WES}/runs/{run_id}")).json()
    assert b"[step shout] start" in await fetch(api, log["run_log"]["stderr"])  # stored at its end too


async def test_a_run_ends_only_once_its_results_are_stored(
    api: httpx.AsyncClient, services: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 down when the engine ends: the run stays RUNNING (nothing recorded as ended without its
    results); S3 back: the next sync stores them and the run ends."""
    from moto.server import ThreadedMotoServer

    from tests.support.network import free_port

    _engines(services, "cwltool")
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    port = free_port()
    settings = services.settings
    settings.storage, settings.s3_bucket = "s3", "down"
    settings.s3_endpoint_url, settings.live_log_seconds, settings.lease_seconds = f"http://127.0.0.1:{port}", 0, 1
    services.storage = open_storage(settings)
    run_id = await submit_cwl(api)
    worker = Worker(services)
    handle_ended = False
    for _ in range(300):  # S3 is not there at all: the engine runs and ends, the run may not
        await worker.iterate()
        state = (await api.get(f"{WES}/runs/{run_id}/status")).json()["state"]
        assert state not in TERMINAL
        handle_ended = (run_folder(services.runs_dir, run_id).work / "outputs" / "shouted.txt").exists()
        if handle_ended and state == "RUNNING":
            break
        await asyncio.sleep(0.1)
    assert handle_ended
    for _ in range(10):
        await worker.iterate()
        await asyncio.sleep(0.3)
    assert (await api.get(f"{WES}/runs/{run_id}/status")).json()["state"] == "RUNNING"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        store = services.storage
        assert isinstance(store, S3Storage)
        store.client.create_bucket(Bucket="down")
        assert await follow(api, worker, run_id, TERMINAL) == "COMPLETE"
        run_folder(services.runs_dir, run_id).remove()
        await _check_downloads(api, run_id, message=b"HELLO FLOWDECK\n")
    finally:
        server.stop()


async def submit_cwl(api: httpx.AsyncClient) -> str:
    from tests.integration.test_engine_runs import submit as submit_two_step

    return await submit_two_step(api)
