"""Input staging (services/execution/staging.py): s3://, https:// and file:// inputs copied into the run
before cwltool starts, against moto's S3 server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.backends.registry import Registry, load_class
from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.runs import RunSpec
from flowdeck.errors import ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution import staging
from flowdeck.worker.loop import Worker
from tests.support.network import free_port, moto_s3

WES = "/ga4gh/wes/v1"
BUCKET = "stage-in"
CONTENT = b"staged from s3\n"
UPPER = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [tr, a-z, A-Z]
stdin: $(inputs.text.path)
stdout: upper.txt
inputs:
  text: File
outputs:
  upper: {type: stdout}
"""
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}

pytestmark = pytest.mark.skipif(not load_class("cwltool").available(), reason="cwltool is not installed")


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3 server with one bucket: alpha/in.txt (group alpha's), beta/secret.txt."""
    with pytest.MonkeyPatch.context() as patch, moto_s3() as url:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "test")
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="alpha/in.txt", Body=CONTENT)
        client.put_object(Bucket=BUCKET, Key="beta/secret.txt", Body=b"beta's\n")
        yield url


@pytest.fixture
def staging_services(services: AppContext, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppContext:
    """cwltool enabled; group alpha may stage from s3://stage-in/alpha/; files under tmp_path/roots."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    settings = services.settings
    settings.backends = ["demo", "cwltool"]
    settings.s3_endpoint_url = s3_url
    settings.staging_s3_prefixes = {"alpha": [f"s3://{BUCKET}/alpha/"]}
    settings.dataset_file_roots = [tmp_path / "roots"]
    services.backends = Registry(settings)
    return services


async def submit(api: httpx.AsyncClient, location: str, group: str = "alpha") -> httpx.Response:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "upper.cwl",
        "workflow_params": json.dumps({"text": {"class": "File", "location": location}}),
        "research_group": group,
    }
    return await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("upper.cwl", UPPER.encode())})


async def run_to_end(api: httpx.AsyncClient, services: AppContext, location: str) -> dict[str, Any]:
    answer = await submit(api, location)
    assert answer.status_code == 200, answer.text
    return await follow(api, services, answer.json()["run_id"])


async def follow(api: httpx.AsyncClient, services: AppContext, run_id: str) -> dict[str, Any]:
    worker, loop = Worker(services), asyncio.get_running_loop()
    deadline = loop.time() + 90
    while loop.time() < deadline:
        await worker.iterate()
        run: dict[str, Any] = (await api.get(f"{WES}/runs/{run_id}")).json()
        if run["state"] in TERMINAL:
            return run
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end")


async def staged_events(services: AppContext, run_id: str) -> list[str]:
    async with services.db.read() as conn:
        rows = await event_rows.for_run(conn, run_id)
    return [row["reason"] for row in rows if row["kind"] == staging.EVENT_KIND]


async def output_text(api: httpx.AsyncClient, run_id: str) -> str:
    listing = (await api.get(f"{WES}/runs/{run_id}/outputs")).json()
    upper = next(f for f in listing["files"] if f["name"].endswith("upper.txt"))
    return (await api.get(upper["url"].replace("http://testserver", ""), follow_redirects=True)).text


@pytest.mark.engine
async def test_s3_input_is_staged_checksummed_and_used(api: httpx.AsyncClient, staging_services: AppContext) -> None:
    run = await run_to_end(api, staging_services, f"s3://{BUCKET}/alpha/in.txt")
    assert run["state"] == "COMPLETE", run["run_log"]
    assert await output_text(api, run["run_id"]) == CONTENT.decode().upper()
    (event,) = await staged_events(staging_services, run["run_id"])
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert (
        event
        == f"/text/location: s3://{BUCKET}/alpha/in.txt -> staged/0/in.txt ({len(CONTENT)} bytes, sha256:{digest})"
    )


async def test_s3_object_of_another_group_is_refused_at_submit(
    api: httpx.AsyncClient, staging_services: AppContext
) -> None:
    answer = await submit(api, f"s3://{BUCKET}/beta/secret.txt")
    assert answer.status_code == 403, answer.text
    assert "/text/location" in answer.text
    assert "research group 'alpha'" in answer.text


async def test_missing_s3_object_fails_the_run_with_the_reason(
    api: httpx.AsyncClient, staging_services: AppContext
) -> None:
    run = await run_to_end(api, staging_services, f"s3://{BUCKET}/alpha/absent.txt")
    assert run["state"] == "EXECUTOR_ERROR"
    assert any(f"s3://{BUCKET}/alpha/absent.txt' does not exist" in line for line in run["run_log"]["system_logs"])


@pytest.mark.engine
async def test_file_input_inside_roots_staged_outside_refused(
    api: httpx.AsyncClient, staging_services: AppContext, tmp_path: Path
) -> None:
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "local.txt").write_bytes(b"from a root\n")
    (tmp_path / "elsewhere.txt").write_bytes(b"not for clients\n")
    outside = await submit(api, (tmp_path / "elsewhere.txt").as_uri())  # WES's 400 (a 422 on /jobs)
    assert outside.status_code == 400
    assert "file:// inputs must lie under" in outside.text
    run = await run_to_end(api, staging_services, (tmp_path / "roots" / "local.txt").as_uri())
    assert run["state"] == "COMPLETE", run["run_log"]
    assert await output_text(api, run["run_id"]) == "FROM A ROOT\n"


async def test_https_input_goes_through_the_ssrf_policy(api: httpx.AsyncClient, staging_services: AppContext) -> None:
    url = f"https://127.0.0.1:{free_port()}/reads.txt"
    refused = await submit(api, url)
    assert refused.status_code == 400
    assert "SSRF policy refuses it" in refused.text
    staging_services.settings.outbound_allowlist = ["127.0.0.1"]
    # Allowed now; nothing listens there, so staging fails the run, saying why, at once.
    run = await run_to_end(api, staging_services, url)
    assert run["state"] == "EXECUTOR_ERROR"
    assert any(url in line and "could not be fetched" in line for line in run["run_log"]["system_logs"])


def spec(workflow_type: str, params: dict[str, Any], tmp_path: Path) -> RunSpec:
    return RunSpec("r", workflow_type, "1.0", "w", params, tmp_path / "work", tmp_path / "attachments")


def test_what_is_staged_for_each_workflow_type(tmp_path: Path) -> None:
    cwl = spec(
        "CWL",
        {"a": {"class": "File", "location": "s3://b/k/a.fq"}, "b": "s3://b/not-a-file", "c": [{"class": "File"}]},
        tmp_path,
    )
    assert [(i.pointer, i.relative) for i in staging.find(cwl)] == [("/a/location", "staged/0/a.fq")]
    snakemake = spec("SNAKEMAKE", {"reads": ["https://h/x/r1.fq.gz", "file:///data/r2.fq"], "n": 1, "s": "x"}, tmp_path)
    found = staging.find(snakemake)
    assert [i.pointer for i in found] == ["/reads/0", "/reads/1"]
    localized = staging.localized(snakemake, found).workflow_params
    assert localized["reads"] == [
        str(tmp_path / "attachments/staged/0/r1.fq.gz"),
        str(tmp_path / "attachments/staged/1/r2.fq"),
    ]
    assert snakemake.workflow_params["reads"][0] == "https://h/x/r1.fq.gz"  # the stored spec is untouched
    with pytest.raises(ValidationFailed, match="Directory inputs are not staged"):
        staging.find(spec("CWL", {"d": {"class": "Directory", "location": "s3://b/dir/"}}, tmp_path))


async def test_service_info_advertises_what_is_staged(api: httpx.AsyncClient, staging_services: AppContext) -> None:
    info = (await api.get(f"{WES}/service-info")).json()
    assert info["supported_filesystem_protocols"] == ["file", "https", "s3"]
    staging_services.settings.staging_s3_prefixes = {}
    staging_services.settings.dataset_file_roots = []
    info = (await api.get(f"{WES}/service-info")).json()
    assert info["supported_filesystem_protocols"] == ["https"]


SNAKEFILE = """rule all:
    input:
        "results/upper.txt",


rule upper:
    input:
        config["reads"][0],
    output:
        "results/upper.txt",
    shell:
        "tr a-z A-Z < {input} > {output}"
"""


@pytest.mark.engine
@pytest.mark.skipif(not load_class("snakemake").available(), reason="snakemake is not installed")
@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # the database side is the CWL test's
async def test_snakemake_config_values_are_staged(api: httpx.AsyncClient, staging_services: AppContext) -> None:
    staging_services.settings.backends = ["demo", "snakemake"]
    staging_services.backends = Registry(staging_services.settings)
    form = {
        "workflow_type": "SMK",
        "workflow_type_version": "9",
        "workflow_url": "Snakefile",
        "workflow_params": json.dumps({"reads": [f"s3://{BUCKET}/alpha/in.txt"]}),
        "research_group": "alpha",
    }
    answer = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("Snakefile", SNAKEFILE.encode())})
    assert answer.status_code == 200, answer.text
    run = await follow(api, staging_services, answer.json()["run_id"])
    assert run["state"] == "COMPLETE", run["run_log"]
    assert await output_text(api, run["run_id"]) == CONTENT.decode().upper()
    assert len(await staged_events(staging_services, run["run_id"])) == 1


UPPER_WDL = """version 1.0

task upper {
  input {
    File text
  }
  command <<<
    tr a-z A-Z < '~{text}' > upper.txt
  >>>
  output {
    File out = "upper.txt"
  }
}
"""


@pytest.mark.engine
@pytest.mark.skipif(not load_class("miniwdl").available(), reason="miniwdl is not installed")
@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # the database side is the CWL test's
async def test_wdl_file_inputs_are_staged(api: httpx.AsyncClient, staging_services: AppContext) -> None:
    staging_services.settings.backends = ["demo", "miniwdl"]
    staging_services.backends = Registry(staging_services.settings)
    form = {
        "workflow_type": "WDL",
        "workflow_type_version": "1.0",
        "workflow_url": "upper.wdl",
        "workflow_params": json.dumps({"upper.text": f"s3://{BUCKET}/alpha/in.txt"}),
        "research_group": "alpha",
    }
    answer = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("upper.wdl", UPPER_WDL.encode())})
    assert answer.status_code == 200, answer.text
    run = await follow(api, staging_services, answer.json()["run_id"])
    assert run["state"] == "COMPLETE", run["run_log"]
    assert await output_text(api, run["run_id"]) == CONTENT.decode().upper()


@pytest.mark.engine
@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
async def test_a_long_staging_keeps_the_runs_lease(
    api: httpx.AsyncClient, staging_services: AppContext, tmp_path: Path
) -> None:
    """A download longer than the lease: the run stays the worker's (no other worker takes it
    over to stage the same files at once). The input is a FIFO the test writes when it is ready."""
    staging_services.settings.lease_seconds = 1.5
    (tmp_path / "roots").mkdir()
    fifo = tmp_path / "roots" / "slow.txt"
    os.mkfifo(fifo)
    answer = await submit(api, fifo.as_uri())
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["run_id"]
    dispatching = asyncio.create_task(Worker(staging_services).iterate())
    try:
        await asyncio.sleep(3 * staging_services.settings.lease_seconds)
        async with staging_services.db.read() as conn:
            row = await run_rows.get(conn, run_id)
        assert row is not None
        assert row.lease_expires_at.replace(tzinfo=UTC) > datetime.now(UTC)
        await asyncio.to_thread(fifo.write_bytes, b"slowly\n")
    finally:
        with contextlib.suppress(OSError):  # ENXIO: no reader (any more)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a blocked reader sees the end
        await dispatching
    run = await follow(api, staging_services, run_id)
    assert run["state"] == "COMPLETE", run["run_log"]
    assert await output_text(api, run_id) == "SLOWLY\n"
