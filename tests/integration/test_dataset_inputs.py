"""Run inputs given as ``dataset:<id>`` (services/datasets/inputs.py): resolved at submit with the
datasets' visibility rule at every door, staged by the worker from the dataset's stored file or
its URI, and a dataset deleted before staging fails the run saying so.

Two users in auth mode ``basic``: alice (lab-a) owns the datasets, bob (lab-b) may not use them.
The real pipeline run with uploaded datasets is in test_variant_calling.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowdeck.backends.registry import load_class
from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.db.tables import runs as runs_table
from flowdeck.services.core.context import AppContext
from flowdeck.services.execution import staging
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

WES = "/ga4gh/wes/v1"
ALICE, BOB = basic("alice"), basic("bob")
READS = b"@r1\nACGT\n+\nIIII\n"
SNAKEFILE = """rule all:
    input:
        "results/joined.txt",


rule join:
    input:
        config["reads"],
    output:
        "results/joined.txt",
    shell:
        "cat {input} > {output}"
"""
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}

pytestmark = pytest.mark.skipif(not load_class("snakemake").available(), reason="snakemake is not installed")


@pytest.fixture
async def app(db_settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[AppContext, httpx.AsyncClient]]:
    """Basic auth, Snakemake enabled, file:// datasets under tmp_path/roots; alice in lab-a, bob in lab-b."""
    (tmp_path / "roots").mkdir()
    settings = basic_settings(db_settings).model_copy(
        update={"backends": ["demo", "snakemake"], "dataset_file_roots": [tmp_path / "roots"]}
    )
    async with basic_app(settings) as (_, services, client):
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        yield services, client


async def upload(client: httpx.AsyncClient, filename: str, content: bytes) -> str:
    answer = await client.post(
        "/datasets", data={"research_group": "lab-a"}, files={"file": (filename, content)}, headers=ALICE
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def submit(client: httpx.AsyncClient, reads: list[str], who: dict[str, str], group: str) -> httpx.Response:
    form = {
        "workflow_type": "SMK",
        "workflow_type_version": "9",
        "workflow_url": "Snakefile",
        "workflow_params": json.dumps({"reads": reads}),
        "research_group": group,
    }
    files = {"workflow_attachment": ("Snakefile", SNAKEFILE.encode())}
    return await client.post(f"{WES}/runs", data=form, files=files, headers=who)


async def follow(client: httpx.AsyncClient, services: AppContext, run_id: str) -> dict[str, Any]:
    worker, loop = Worker(services), asyncio.get_running_loop()
    deadline = loop.time() + 90
    while loop.time() < deadline:
        await worker.iterate()
        run: dict[str, Any] = (await client.get(f"{WES}/runs/{run_id}", headers=ALICE)).json()
        if run["state"] in TERMINAL:
            return run
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end")


async def test_another_groups_dataset_is_refused_as_if_unknown(app: tuple[AppContext, httpx.AsyncClient]) -> None:
    """WES, /jobs and /requests: bob naming alice's dataset gets what an unknown id gets."""
    services, client = app
    theirs, unknown = await upload(client, "a_R1.fastq", READS), str(uuid.uuid4())
    answers = {}
    for dataset_id in (theirs, unknown):
        wes = await submit(client, [f"dataset:{dataset_id}"], BOB, "lab-b")
        job = {"pipeline_name": "hello_snakemake", "parameters": {"message": f"dataset:{dataset_id}"}}
        jobs = await client.post("/jobs", json=job | {"research_group": "lab-b"}, headers=BOB)
        dry = await client.post("/jobs", json=job, params={"dry_run": "true"}, headers=BOB)
        request = {"pipeline_name": "hello_snakemake", "samples": [{"message": f"dataset:{dataset_id}"}]}
        requests = await client.post("/requests", json=request | {"research_group": "lab-b"}, headers=BOB)
        answers[dataset_id] = [(r.status_code, r.text.replace(dataset_id, "ID")) for r in (wes, jobs, dry, requests)]
    assert answers[theirs] == answers[unknown]
    (wes_status, wes_text), (jobs_status, jobs_text), dry_run, (request_status, request_text) = answers[unknown]
    assert (wes_status, jobs_status, request_status) == (400, 422, 422)
    assert dry_run == (jobs_status, jobs_text)
    assert "input /reads/0: dataset ID not found" in wes_text
    assert json.loads(jobs_text)["errors"][0]["pointer"] == "/message"
    assert json.loads(request_text)["errors"][0]["pointer"] == "/samples/0/message"
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(runs_table))).scalar_one() == 0
    # Alice, whose dataset it is, gets past the check (the run is accepted).
    assert (await submit(client, [f"dataset:{theirs}"], ALICE, "lab-a")).status_code == 200


async def test_a_dataset_deleted_before_staging_fails_the_run(app: tuple[AppContext, httpx.AsyncClient]) -> None:
    services, client = app
    dataset_id = await upload(client, "gone_R1.fastq", READS)
    answer = await submit(client, [f"dataset:{dataset_id}"], ALICE, "lab-a")
    assert answer.status_code == 200, answer.text
    assert (await client.delete(f"/datasets/{dataset_id}", headers=ALICE)).status_code == 204
    run = await follow(client, services, answer.json()["run_id"])
    assert run["state"] == "EXECUTOR_ERROR"
    reason = f"input /reads/0: dataset {dataset_id} not found (deleted after the run was submitted?)"
    assert reason in run["run_log"]["system_logs"]


@pytest.mark.engine
@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # the database side is the tests above
async def test_stored_and_referenced_datasets_are_staged(
    app: tuple[AppContext, httpx.AsyncClient], tmp_path: Path
) -> None:
    """An uploaded dataset (storage) and one registered by file:// URI, staged, checksummed, recorded."""
    services, client = app
    stored = await upload(client, "s_R1.fastq", READS)
    on_disk = tmp_path / "roots" / "ref_R1.fq"
    on_disk.write_bytes(READS.upper())
    registered = await client.post(
        "/datasets", json={"name": "ref", "research_group": "lab-a", "uri": on_disk.as_uri()}, headers=ALICE
    )
    assert registered.status_code == 201, registered.text
    referenced = registered.json()["id"]
    answer = await submit(client, [f"dataset:{stored}", f"dataset:{referenced}"], ALICE, "lab-a")
    assert answer.status_code == 200, answer.text
    run = await follow(client, services, answer.json()["run_id"])
    assert run["state"] == "COMPLETE", run["run_log"]
    async with services.db.read() as conn:
        events = [e["reason"] for e in await event_rows.for_run(conn, run["run_id"]) if e["kind"] == staging.EVENT_KIND]
        row = await run_rows.get(conn, run["run_id"])
    assert events == [
        f"/reads/0: dataset:{stored} -> staged/0/s_R1.fastq ({len(READS)} bytes, sha256:{hashlib.sha256(READS).hexdigest()})",
        f"/reads/1: dataset:{referenced} -> staged/1/ref_R1.fq ({len(READS)} bytes, "
        f"sha256:{hashlib.sha256(READS.upper()).hexdigest()})",
    ]
    assert row is not None
    assert row.input_datasets == {"/reads/0": stored, "/reads/1": referenced}
    assert run["request"]["workflow_params"] == {"reads": [f"dataset:{stored}", f"dataset:{referenced}"]}
    listing = (await client.get(f"{WES}/runs/{run['run_id']}/outputs", headers=ALICE)).json()
    joined = next(f for f in listing["files"] if f["name"].endswith("joined.txt"))
    served = await client.get(joined["url"].replace("http://testserver", ""), headers=ALICE, follow_redirects=True)
    assert served.content == READS + READS.upper()  # the engine read the staged bytes
