"""The jobs API over HTTP (seeds 000 and 002), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from flowdeck.api.app import create_app
from flowdeck.services.core.context import AppContext
from flowdeck.worker.loop import Worker

GATK = {
    "pipeline_name": "gatk_variant_calling",
    "parameters": {
        "sample_id": "WGS_001",
        "reference_genome": "hg38",
        "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz",
        "fastq_r2": "s3://input-data/WGS_001_R2.fastq.gz",
        "caller": "HaplotypeCaller",
        "quality_threshold": 30,
        "depth_threshold": 10,
    },
    "research_group": "cancer_genomics_lab",
    "description": "Variant calling for tumor sample WGS_001",
}
# Seed 002's GATK body pinned to the simulated version 1.0.0 (demo backend). As written it reaches
# version 2.0.0, the real one, which refuses HaplotypeCaller without GATK: test_variant_calling.
GATK_SIM = {**GATK, "pipeline_version": "1.0.0"}
RNASEQ = {
    "pipeline_name": "rnaseq_deseq2",
    "parameters": {
        "sample_id": "RNA_001",
        "reference": "gencode_v38",
        "fastq_files": ["s3://data/RNA_001.fastq.gz"],
        "adapter_sequence": "AGATCGGAAGAGC",
        "min_quality": 20,
        "quantification_method": "salmon",
    },
    "research_group": "systems_biology_lab",
    "description": "RNA-seq analysis for sample RNA_001",
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drive(services: AppContext, api: httpx.AsyncClient, job_id: str, until: set[str]) -> dict[str, Any]:
    worker = Worker(services)
    for _ in range(400):
        await worker.iterate()
        job: dict[str, Any] = (await api.get(f"/jobs/{job_id}")).json()
        if job["status"] in until:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} stuck")


async def dataset(api: httpx.AsyncClient, **extra: Any) -> str:
    body = {"name": "reads", "research_group": "lab", "uri": "https://example.org/reads.tsv", **extra}
    response = await api.post("/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# RNA-seq on the demo simulation (1.0.0): the newest version runs the real tools, which needs the
# body's s3:// input staged and gencode_v38 registered (issue 16; tests/integration/test_rnaseq.py).
RNASEQ_SIMULATED = RNASEQ | {"pipeline_version": "1.0.0"}


@pytest.mark.parametrize("body", [GATK_SIM, RNASEQ_SIMULATED], ids=["gatk-1.0.0", "rnaseq-1.0.0"])
async def test_seed_002_bodies_verbatim_run_to_completion(
    api: httpx.AsyncClient, services: AppContext, body: dict[str, Any]
) -> None:
    response = await api.post("/jobs", json=body)
    assert response.status_code in (201, 202), response.text
    job = response.json()
    assert job["pipeline_name"] == body["pipeline_name"]
    assert job["research_group"] == body["research_group"]
    assert job["description"] == body["description"]
    assert job["parameters"]["sample_id"] == body["parameters"]["sample_id"]
    assert job["status"] in {"PENDING", "RUNNING"}
    for key in (
        "id",
        "status",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "error_message",
        "invocation_id",
        "dataset_id",
        "workflow_name",
        "state",
        "wes_state",
        "rerun_of",
        "outputs",
        "links",
    ):
        assert key in job
    final = await drive(services, api, job["id"], {"COMPLETED", "FAILED"})
    assert final["status"] == "COMPLETED"
    assert final["state"] == "completed"
    assert final["completed_at"] is not None
    wes = (await api.get(f"/ga4gh/wes/v1/runs/{job['id']}")).json()
    assert wes["state"] == final["wes_state"] == "COMPLETE"
    assert wes["request"]["workflow_params"] == final["parameters"]
    events = (await api.get(f"/jobs/{job['id']}/events")).json()["events"]
    assert next(e["to_state"] for e in events) == "QUEUED"
    assert events[-1]["to_state"] == "COMPLETE"
    listed = (await api.get("/jobs", params={"pipeline_name": body["pipeline_name"], "state": "completed"})).json()
    assert listed["total"] == 1
    assert listed["jobs"][0]["id"] == job["id"]


async def test_parameters_problems_are_422_with_every_problem(api: httpx.AsyncClient) -> None:
    bad = {**GATK_SIM, "parameters": {**GATK["parameters"], "reference_genome": "hg99", "quality_threshold": 500}}
    response = await api.post("/jobs", json=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    pointers = {p["pointer"] for p in response.json()["errors"]}
    assert {"/parameters/reference_genome", "/parameters/quality_threshold"} <= pointers or len(pointers) >= 2
    assert (await api.get("/jobs")).json()["total"] == 0


async def test_unknown_pipeline_is_404_listing_what_exists(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", json={**GATK, "pipeline_name": "nope"})
    assert response.status_code == 404
    assert "gatk_variant_calling" in response.json()["detail"]


async def test_dry_run_stores_nothing(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", params={"dry_run": "true"}, json=GATK_SIM)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dry_run"] is True
    assert body["backend"] == "demo"
    assert body["target"]["kind"] == "simulation"
    assert body["parameters"]["caller"] == "HaplotypeCaller"
    assert (await api.get("/jobs")).json()["total"] == 0


async def test_seed_000_unknown_dataset_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", json={"dataset_id": "missing", "workflow_name": "flowdeck_sort_upper"})
    assert response.status_code == 404


async def test_seed_000_workflow_not_allowed_is_422_listing_allowed(api: httpx.AsyncClient) -> None:
    dataset_id = await dataset(api)
    response = await api.post("/jobs", json={"dataset_id": dataset_id, "workflow_name": "rm_everything"})
    assert response.status_code == 422
    assert "flowdeck_sort_upper" in response.json()["allowed"]
    assert "flowdeck_sort_upper" in response.json()["detail"]


async def test_dry_run_answers_what_the_real_submit_would(api: httpx.AsyncClient) -> None:
    """hello_cwl runs on cwltool, which this service has not enabled; galaxy neither."""
    dataset_id = await dataset(api)
    bodies = [
        {"pipeline_name": "hello_cwl", "parameters": {}},
        {"dataset_id": dataset_id, "workflow_name": "flowdeck_sort_upper", "parameters": {}},
    ]
    for body in bodies:
        dry = await api.post("/jobs", params={"dry_run": "true"}, json=body)
        real = await api.post("/jobs", json=body)
        assert dry.status_code == real.status_code == 400, (dry.text, real.text)
        assert dry.json()["detail"] == real.json()["detail"]
    assert (await api.get("/jobs")).json()["total"] == 0


async def test_dry_run_shows_no_server_path(api: httpx.AsyncClient) -> None:
    cwl = await api.post("/jobs", params={"dry_run": "true"}, json={"pipeline_name": "hello_cwl"})
    assert "path" not in cwl.text
    pipelines = await api.get("/pipelines")
    assert pipelines.status_code == 200
    assert "/catalog/" not in pipelines.text
    shown = {p["name"]: p["target"] for p in pipelines.json()["pipelines"]}
    assert shown["hello_cwl"]["workflow"] == "workflows/hello_cwl/hello.cwl"
    assert "path" not in shown["hello_cwl"]
    one = await api.get("/pipelines/hello_cwl")
    assert "/catalog/" not in one.text


@pytest.fixture
async def galaxy_down_api(services: AppContext) -> Any:
    """The app with the Galaxy backend pointed at a closed port."""
    settings = services.settings.model_copy(
        update={
            "backends": ["demo", "galaxy"],
            "galaxy_url": f"http://127.0.0.1:{closed_port()}",
            "galaxy_api_key": SecretStr("k" * 32),
            "dispatch_timeout_seconds": 5.0,
            "galaxy_timeout_seconds": 2.0,
        }
    )
    down = AppContext.create(settings)
    if "galaxy" not in down.backends:
        await down.close()
        pytest.skip("bioblend is not installed")
    app = create_app(settings, down)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client
    await down.close()


async def test_seed_000_dry_run_shows_galaxy_target(galaxy_down_api: httpx.AsyncClient) -> None:
    api = galaxy_down_api
    dataset_id = await dataset(api)
    body = {"dataset_id": dataset_id, "workflow_name": "flowdeck_sort_upper", "overwrite": False, "parameters": {}}
    response = await api.post("/jobs?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["backend"] == "galaxy"
    assert preview["target"]["workflow"] == "flowdeck_sort_upper"
    assert preview["dataset"]["uri"] == "https://example.org/reads.tsv"


async def test_seed_000_galaxy_unreachable_is_202_queued_and_kept(galaxy_down_api: httpx.AsyncClient) -> None:
    api = galaxy_down_api
    dataset_id = await dataset(api)
    body = {"dataset_id": dataset_id, "workflow_name": "flowdeck_sort_upper", "overwrite": False, "parameters": {}}
    response = await api.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued"
    assert job["invocation_id"] is None
    assert job["dataset_id"] == dataset_id
    assert job["workflow_name"] == "flowdeck_sort_upper"
    listed = (await api.get("/jobs", params={"dataset_id": dataset_id})).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    again = await api.post("/jobs", json={**body, "overwrite": True})
    assert again.status_code == 202
    assert again.json()["rerun_of"] == job["id"]
    rerun = await api.post(f"/jobs/{job['id']}/rerun")
    assert rerun.json()["rerun_of"] == job["id"]
    assert (await api.delete(f"/datasets/{dataset_id}")).status_code == 409


async def test_rerun_and_cancel(api: httpx.AsyncClient, services: AppContext) -> None:
    job = (await api.post("/jobs", json=GATK_SIM)).json()
    rerun = await api.post(f"/jobs/{job['id']}/rerun")
    assert rerun.status_code in (201, 202)
    assert rerun.json()["rerun_of"] == job["id"]
    assert rerun.json()["parameters"] == job["parameters"]
    canceled = await api.post(f"/jobs/{rerun.json()['id']}/cancel")
    assert canceled.status_code == 202
    final = await drive(services, api, rerun.json()["id"], {"CANCELED", "COMPLETED"})
    assert final["state"] in {"canceled", "completed"}
    again = await api.post(f"/jobs/{rerun.json()['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["state"] == final["state"]
    assert again.json()["detail"].startswith("already ")
    assert (await api.get("/jobs/unknown")).status_code == 404


async def test_list_paging_and_state_filter(api: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await api.post("/jobs", json=GATK_SIM)).status_code in (201, 202)
    first = (await api.get("/jobs", params={"page_size": 2})).json()
    assert len(first["jobs"]) == 2
    assert first["total"] == 3
    assert first["next_page_token"]
    second = (await api.get("/jobs", params={"page_size": 2, "page_token": first["next_page_token"]})).json()
    assert len(second["jobs"]) == 1
    assert second["next_page_token"] == ""
    assert (await api.get("/jobs", params={"state": "bogus"})).status_code == 422


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "pipeline_name",
        "parameters",
        "research_group",
        "description",
        "dataset_id",
        "workflow_name",
        "overwrite",
        "strict",
        "pipeline_version",
    ]
)
BODIES = (
    JSON
    | st.dictionaries(KEYS, JSON, max_size=6)
    | st.fixed_dictionaries(
        {
            "pipeline_name": st.sampled_from(["gatk_variant_calling", "rnaseq_deseq2"]),
            "parameters": st.dictionaries(st.sampled_from(list(GATK["parameters"]) + list(RNASEQ["parameters"])), JSON),
        }
    )
)


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
async def test_arbitrary_bodies_never_500(api: httpx.AsyncClient, body: Any) -> None:
    response = await api.post("/jobs?dry_run=true", json=body)
    assert response.status_code < 500, response.text


async def test_non_json_constants_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", content=b'{"pipeline_name": NaN}', headers={"content-type": "application/json"})
    assert response.status_code == 400  # not JSON: malformed (docs/errors.md)
