"""Requests (seed 001) over HTTP, expanded by the worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from flowdeck.db.tables import requests as requests_table
from flowdeck.db.tables import runs as runs_table
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.requests.expansion import create_run
from flowdeck.worker.expand import expand_once
from flowdeck.worker.loop import Worker

PIPELINE = "rnaseq_deseq2"
# The demo simulation: these tests are about requests, not RNA-seq (2.0.0 runs tools: test_rnaseq.py).
VERSION = "1.0.0"
SHARED = {"reference": "gencode_v44", "quantification_method": "salmon"}


def sample(i: int) -> dict[str, Any]:
    return {
        "sample_id": f"S{i:03d}",
        "fastq_files": [f"s3://lab/reads/S{i:03d}_R1.fastq.gz", f"s3://lab/reads/S{i:03d}_R2.fastq.gz"],
    }


def body(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "pipeline_name": PIPELINE,
        "pipeline_version": VERSION,
        "parameters": SHARED,
        "samples": [sample(i) for i in range(n)],
        **extra,
    }


async def post(api: httpx.AsyncClient, payload: dict[str, Any], **kwargs: Any) -> str:
    response = await api.post("/requests", json=payload, **kwargs)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "new"
    return str(response.json()["request_id"])


async def count_runs(services: AppContext, request_id: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(runs_table)
    if request_id is not None:
        query = query.where(runs_table.c.request_id == request_id)
    async with services.db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def count_requests(services: AppContext) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(requests_table))).scalar_one())


async def all_runs(api: httpx.AsyncClient, request_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    token = ""
    while True:
        page = (await api.get(f"/requests/{request_id}", params={"page_size": 20, "page_token": token})).json()
        runs += page["runs"]
        token = page["next_page_token"]
        if not token:
            return runs


async def test_fifty_samples_expand_to_fifty_runs_despite_a_crash(api: httpx.AsyncClient, services: AppContext) -> None:
    request_id = await post(api, body(50))
    assert await count_runs(services) == 0  # nothing but the request until a worker expands it
    # Worker A claims the request, creates 20 runs, and "dies" holding its lease.
    async with services.db.write() as conn:  # no UPDATE … RETURNING: MariaDB has none
        lease = {"lease_owner": "A", "lease_expires_at": utcnow() + timedelta(minutes=5)}
        await conn.execute(sa.update(requests_table).values(lease))
        claimed = (await conn.execute(sa.select(requests_table))).mappings().one()
    pipeline = services.catalog.get(PIPELINE, VERSION)
    for index in range(20):
        await create_run(services, pipeline, claimed, index, claimed["spec"]["items"][index])
    # A zombie insert of an index that exists is refused by the UNIQUE constraint, not duplicated.
    assert await create_run(services, pipeline, claimed, 7, claimed["spec"]["items"][7]) == 0
    assert await expand_once(services, "B") == 0  # A's lease still holds
    assert (await api.get(f"/requests/{request_id}/state")).json() == {
        "request_id": request_id,
        "state": "new",
        "message": None,
    }
    async with services.db.write() as conn:
        await conn.execute(sa.update(requests_table).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    await expand_once(services, "B")
    assert await count_runs(services, request_id) == 50
    runs = await all_runs(api, request_id)
    assert [r["request_index"] for r in runs] == list(range(50))
    assert [r["sample_id"] for r in runs] == [f"S{i:03d}" for i in range(50)]
    state = (await api.get(f"/requests/{request_id}/state")).json()
    assert state["state"] == "submitted"
    events = (await api.get(f"/requests/{request_id}/events")).json()["events"]
    assert [(e["from_state"], e["to_state"]) for e in events] == [(None, "new"), ("new", "submitted")]
    assert events[1]["actor"] == "worker"
    assert events[1]["reason"] == "all 50 runs created"


async def test_expansion_is_bounded_per_step_and_resumes(api: httpx.AsyncClient, services: AppContext) -> None:
    request_id = await post(api, body(12))
    await expand_once(services, "w1", max_runs=5)
    assert await count_runs(services, request_id) == 5
    assert (await api.get(f"/requests/{request_id}/state")).json()["state"] == "new"
    await expand_once(services, "w2", max_runs=5)
    await expand_once(services, "w1", max_runs=5)
    assert await count_runs(services, request_id) == 12
    assert (await api.get(f"/requests/{request_id}/state")).json()["state"] == "submitted"


async def drive_request(api: httpx.AsyncClient, worker: Worker, request_id: str, until: set[str]) -> dict[str, Any]:
    for _ in range(400):
        await worker.iterate()
        detail = (await api.get(f"/requests/{request_id}")).json()
        if detail["aggregate"]["state"] in until:
            return dict(detail)
        await asyncio.sleep(0.02)
    raise AssertionError(f"request {request_id} stuck: {detail['aggregate']}")


async def test_aggregate_state_follows_the_runs(api: httpx.AsyncClient, services: AppContext) -> None:
    request_id = await post(api, body(3, description="three samples"))
    detail = (await api.get(f"/requests/{request_id}")).json()
    assert detail["aggregate"] == {"state": "QUEUED", "runs_created": 0, "counts": {}}
    assert detail["total_runs"] == 3
    assert detail["pipeline_version"] == "1.0.0"
    detail = await drive_request(api, Worker(services), request_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})
    assert detail["aggregate"] == {"state": "COMPLETE", "runs_created": 3, "counts": {"COMPLETE": 3}}
    run = (await api.get(f"/ga4gh/wes/v1/runs/{detail['runs'][0]['run_id']}")).json()
    assert run["request"]["workflow_params"]["reference"] == "gencode_v44"
    assert run["request"]["tags"]["request_id"] == request_id


async def test_cancel_request_cancels_every_run(api: httpx.AsyncClient, services: AppContext) -> None:
    services.settings.demo_min_seconds = services.settings.demo_max_seconds = 30
    request_id = await post(api, body(4))
    worker = Worker(services)
    await worker.iterate()
    assert await count_runs(services, request_id) == 4
    response = await api.post(f"/requests/{request_id}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    detail = await drive_request(api, worker, request_id, {"CANCELED"})
    assert detail["aggregate"]["counts"] == {"CANCELED": 4}
    kinds = [e["kind"] for e in (await api.get(f"/requests/{request_id}/events")).json()["events"]]
    assert kinds == ["state", "state", "cancel"]


async def test_cancelling_a_request_whose_runs_all_ended_changes_nothing(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    request_id = await post(api, body(2))
    detail = await drive_request(api, Worker(services), request_id, {"COMPLETE"})
    assert detail["aggregate"]["counts"] == {"COMPLETE": 2}
    response = await api.post(f"/requests/{request_id}/cancel")
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is False
    assert response.json()["detail"] == "already COMPLETE: there is nothing to cancel"
    after = (await api.get(f"/requests/{request_id}")).json()
    assert after["aggregate"]["state"] == "COMPLETE"
    kinds = [e["kind"] for e in (await api.get(f"/requests/{request_id}/events")).json()["events"]]
    assert "cancel" not in kinds


async def test_cancel_before_expansion_stops_it(api: httpx.AsyncClient, services: AppContext) -> None:
    request_id = await post(api, body(5))
    await api.post(f"/requests/{request_id}/cancel")
    await expand_once(services, "w")
    assert await count_runs(services, request_id) == 0
    state = (await api.get(f"/requests/{request_id}/state")).json()
    assert state["state"] == "failed"
    assert "canceled before expansion finished (0 of 5" in state["message"]
    assert (await api.get(f"/requests/{request_id}")).json()["aggregate"]["state"] == "CANCELED"


async def test_request_fails_when_its_pipeline_disappears(api: httpx.AsyncClient, services: AppContext) -> None:
    request_id = await post(api, body(2))
    async with services.db.write() as conn:
        await conn.execute(sa.update(requests_table).values(pipeline_version="9.9.9"))
    await expand_once(services, "w")
    state = (await api.get(f"/requests/{request_id}/state")).json()
    assert state["state"] == "failed"
    assert "has no version '9.9.9'" in state["message"]
    events = (await api.get(f"/requests/{request_id}/events")).json()["events"]
    assert events[-1]["to_state"] == "failed"
    assert events[-1]["reason"] == state["message"]


async def test_sample_sheet_upload(api: httpx.AsyncClient, services: AppContext) -> None:
    sheet = "sample_id,fastq_files\n" + "".join(
        f"S{i},s3://lab/S{i}_R1.fastq.gz;s3://lab/S{i}_R2.fastq.gz\n" for i in range(6)
    )
    response = await api.post(
        "/requests",
        data={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "parameters": '{"reference": "gencode_v44"}'},
        files={"samplesheet": ("sheet.csv", sheet.encode(), "text/csv")},
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert response.json()["total_runs"] == 6
    await expand_once(services, "w")
    runs = await all_runs(api, request_id)
    assert [r["sample_id"] for r in runs] == [f"S{i}" for i in range(6)]


async def test_sample_sheet_as_json_text(api: httpx.AsyncClient) -> None:
    sheet = "sample_id\tfastq_files\nA\ts3://lab/A.fq.gz\n"
    payload = {
        "pipeline_name": PIPELINE,
        "pipeline_version": VERSION,
        "parameters": {"reference": "gencode_v44"},
        "samplesheet": sheet,
    }
    await post(api, payload)


async def assert_refused(
    api: httpx.AsyncClient, services: AppContext, response: httpx.Response, status: int
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await count_requests(services) == 0
    assert await count_runs(services) == 0
    return dict(response.json())


async def test_sheet_with_missing_columns_is_422(api: httpx.AsyncClient, services: AppContext) -> None:
    payload = {"pipeline_name": PIPELINE, "pipeline_version": VERSION, "samplesheet": "sample_id\nA\n"}
    problem = await assert_refused(api, services, await api.post("/requests", json=payload), 422)
    pointers = {(e["pointer"], e["message"]) for e in problem["errors"]}
    assert ("/columns", "line 1: missing required column 'reference'") in pointers
    assert ("/columns", "line 1: missing required column 'fastq_files'") in pointers


async def test_sheet_with_duplicate_sample_ids_is_422(api: httpx.AsyncClient, services: AppContext) -> None:
    sheet = "sample_id,reference,fastq_files\nA,gencode_v44,s3://l/a.fq\nB,gencode_v44,s3://l/b.fq\nA,gencode_v44,s3://l/c.fq\n"
    problem = await assert_refused(
        api,
        services,
        await api.post(
            "/requests", json={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "samplesheet": sheet}
        ),
        422,
    )
    assert problem["errors"] == [
        {
            "pointer": "/rows/2/sample_id",
            "message": "line 4: sample_id 'A' is already used by /rows/0",
            "rule": "unique",
        }
    ]


async def test_sheet_with_100000_rows_is_refused_with_the_limit(api: httpx.AsyncClient, services: AppContext) -> None:
    sheet = "sample_id,reference,fastq_files\n" + "".join(f"S{i},gencode_v44,s3://l/{i}.fq\n" for i in range(100_000))
    response = await api.post(
        "/requests", files={"samplesheet": ("big.csv", sheet.encode(), "text/csv")}, data={"pipeline_name": PIPELINE}
    )
    problem = await assert_refused(api, services, response, 413)
    assert (
        problem["detail"]
        == "the sample sheet has 100000 rows; a request may have at most 10000 (setting max_request_runs)"
    )


async def test_every_bad_sample_is_listed_with_its_pointer(api: httpx.AsyncClient, services: AppContext) -> None:
    samples = [sample(i) for i in range(10)]
    samples[3]["fastq_files"] = ["ftp://nope/x.fastq"]
    samples[7]["sample_id"] = "bad id!"
    samples[8]["sample_id"] = "S000"
    payload = {
        "pipeline_name": PIPELINE,
        "pipeline_version": VERSION,
        "parameters": {**SHARED, "padj_threshold": 3},
        "samples": samples,
    }
    problem = await assert_refused(api, services, await api.post("/requests", json=payload), 422)
    pointers = [e["pointer"] for e in problem["errors"]]
    assert pointers == ["/parameters/padj_threshold", "/samples/3/fastq_files/0", "/samples/7/sample_id"]
    del payload["parameters"]["padj_threshold"]
    problem = await assert_refused(api, services, await api.post("/requests", json=payload), 422)
    assert "/samples/8/sample_id" in [e["pointer"] for e in problem["errors"]]


async def test_other_bad_requests(api: httpx.AsyncClient, services: AppContext) -> None:
    response = await api.post("/requests", json={"pipeline_name": "nope", "samples": [{}]})
    assert "pipelines: " in (await assert_refused(api, services, response, 404))["detail"]
    response = await api.post(
        "/requests",
        json={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "samples": [sample(0)], "dataset_ids": ["x"]},
    )
    assert "exactly one of" in (await assert_refused(api, services, response, 422))["detail"]
    response = await api.post("/requests", json={"pipeline_name": "hello_galaxy", "dataset_ids": ["missing"]})
    errors = (await assert_refused(api, services, response, 422))["errors"]
    assert [e["pointer"] for e in errors][-1] == "/dataset_ids/0"
    response = await api.post(
        "/requests", json={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "samples": [], "colour": 1}
    )
    errors = (await assert_refused(api, services, response, 422))["errors"]
    assert [e["pointer"] for e in errors] == ["/colour"]
    response = await api.post("/requests", json={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "samples": []})
    await assert_refused(api, services, response, 422)


async def test_datasets_for_a_pipeline_that_takes_none_are_refused(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    """rnaseq_deseq2 takes its reads as parameters: the datasets would be dropped silently."""
    registered = await api.post("/datasets", json={"name": "reads", "uri": "https://example.org/r.fastq.gz"})
    assert registered.status_code == 201, registered.text
    payload = {
        "pipeline_name": PIPELINE,
        "pipeline_version": VERSION,
        "parameters": SHARED,
        "dataset_ids": [registered.json()["id"]],
    }
    problem = await assert_refused(api, services, await api.post("/requests", json=payload), 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/dataset_ids"]
    assert "takes no dataset" in problem["detail"]
    job = await api.post(
        "/jobs", json={"pipeline_name": PIPELINE, "pipeline_version": VERSION, "dataset_id": registered.json()["id"]}
    )
    assert job.status_code == 422
    assert [e["pointer"] for e in job.json()["errors"]] == ["/dataset_id"]


async def test_list_and_not_found(api: httpx.AsyncClient) -> None:
    ids = [await post(api, body(1)) for _ in range(3)]
    page1 = (await api.get("/requests", params={"page_size": 2})).json()
    page2 = (await api.get("/requests", params={"page_size": 2, "page_token": page1["next_page_token"]})).json()
    assert [r["request_id"] for r in page1["requests"] + page2["requests"]] == ids[::-1]
    assert page2["next_page_token"] == ""
    assert (await api.get("/requests", params={"state": "submitted"})).json()["requests"] == []
    for path in ("/requests/nope", "/requests/nope/state", "/requests/nope/events"):
        assert (await api.get(path)).status_code == 404
    assert (await api.post("/requests/nope/cancel")).status_code == 404
