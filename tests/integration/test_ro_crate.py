"""Workflow Run RO-Crates of real runs: cwltool, Snakemake and miniwdl through WES and the worker.

Each crate is read back with ``rocrate`` and checked against what the Workflow Run Crate 0.5
profile requires (and Provenance Run Crate's actions, the runs recording tasks), each output's
SHA-256 and size against the bytes in the zip, and validated by ``rocrate-validator``
(tests/support/crate_validator.py). Another group's member getting 404 is test_isolation.py's (the routes are classified "object" there).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from rocrate.rocrate import ROCrate

from flowdeck.backends.registry import Registry, load_class
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs.attachments import run_folder
from flowdeck.services.runs.ro_crate_entities import _member
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import TERMINAL, WES, follow
from tests.integration.test_requests_api import drive_request
from tests.support.crate_validator import validate

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
ENGINES = {
    "cwltool": ("CWL", "v1.2", WORKFLOWS / "cwl" / "two_step.cwl", "cwl"),
    "snakemake": ("SMK", "9", WORKFLOWS / "snakemake" / "Snakefile", "snakemake"),
    "miniwdl": ("WDL", "1.0", WORKFLOWS / "wdl" / "two_step.wdl", "wdl"),
}
PROFILE = "https://w3id.org/ro/wfrun/workflow/0.5"
PROVENANCE = "https://w3id.org/ro/wfrun/provenance/0.5"

pytestmark = pytest.mark.engine


@pytest.fixture
def engine_services(services: AppContext) -> AppContext:
    services.settings.backends = ["demo", *ENGINES]
    services.backends = Registry(services.settings)
    return services


async def _run(api: httpx.AsyncClient, services: AppContext, engine: str) -> str:
    wf_type, version, workflow, _ = ENGINES[engine]
    form = {
        "workflow_type": wf_type,
        "workflow_type_version": version,
        "workflow_url": workflow.name,
        "workflow_params": json.dumps({"message": "hello crate"}),
        "tags": json.dumps({"purpose": "ro-crate"}),
        "research_group": "lab-crate",
    }
    files = {"workflow_attachment": (workflow.name, workflow.read_bytes())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    assert response.status_code == 200, response.text
    run_id = str(response.json()["run_id"])
    assert await follow(api, Worker(services), run_id, TERMINAL, seconds=180) == "COMPLETE"
    return run_id


async def _crate(api: httpx.AsyncClient, path: str, into: Path) -> Path:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "-ro-crate.zip" in response.headers["content-disposition"]
    into.mkdir()
    (into / "crate.zip").write_bytes(response.content)
    with zipfile.ZipFile(into / "crate.zip") as archive:
        archive.extractall(into / "crate")
    return into / "crate"


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else getattr(item, "id", None) or item["@id"] for item in items if item]


def _check_profile(folder: Path, crate: ROCrate, lang: str) -> Any:
    """What Workflow Run Crate 0.5 requires, read back; the run's CreateAction."""
    assert PROFILE in _ids(crate.root_dataset["conformsTo"])
    assert "https://w3id.org/ro/terms/workflow-run/context" in (folder / "ro-crate-metadata.json").read_text()
    workflow = crate.mainEntity
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= set(workflow.type)
    assert workflow["programmingLanguage"].id.endswith(f"#{lang}")
    assert (folder / workflow.id).is_file()
    (action,) = [a for a in crate.get_by_type("CreateAction") if a["instrument"] is workflow]
    assert action["startTime"] <= action["endTime"]
    assert _ids(action["actionStatus"]) == ["http://schema.org/CompletedActionStatus"]
    group = action["agent"]["memberOf"]
    assert (group.type, group["name"]) == ("Organization", "lab-crate")
    slots = set(_ids(workflow["input"]))
    (message,) = [v for v in action["object"] if v["name"] == "message"]
    assert (message.type, message["value"]) == ("PropertyValue", "hello crate")
    assert message["exampleOfWork"].id in slots
    return action


def _check_outputs(folder: Path, action: Any) -> None:
    results = action["result"]
    assert any(r["name"].endswith("shouted.txt") for r in results)
    for result in results:
        content = (folder / result.id).read_bytes()
        assert result["sha256"] == hashlib.sha256(content).hexdigest(), result.id
        assert int(result["contentSize"]) == len(content)
    assert b"HELLO CRATE" in next((folder / r.id).read_bytes() for r in results if r["name"].endswith("shouted.txt"))


def _check_provenance(crate: ROCrate, action: Any) -> None:
    assert PROVENANCE in _ids(crate.root_dataset["conformsTo"])
    (organize,) = crate.get_by_type("OrganizeAction")
    assert organize["result"] is action
    assert organize["instrument"]["softwareVersion"]
    steps = {c["instrument"]["name"] for c in organize["object"]}
    assert any("shout" in step for step in steps), steps


@pytest.mark.parametrize("engine", list(ENGINES))
async def test_crate_of_a_real_run(
    api: httpx.AsyncClient, engine_services: AppContext, engine: str, tmp_path: Path
) -> None:
    if not load_class(engine).available():
        pytest.skip(f"{engine} is not installed")
    run_id = await _run(api, engine_services, engine)
    run_folder(engine_services.runs_dir, run_id).remove()  # the crate's files come from storage
    folder = await _crate(api, f"{WES}/runs/{run_id}/ro-crate", tmp_path / "wes")
    crate = ROCrate(folder)
    action = _check_profile(folder, crate, ENGINES[engine][3])
    _check_outputs(folder, action)
    events = json.loads((folder / "events.json").read_text())["events"]
    assert events[-1]["to_state"] == "COMPLETE"
    tasks = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()["task_logs"]
    if tasks:
        _check_provenance(crate, action)
    validate(folder, "workflow-run-crate-0.5")
    # the jobs view answers the same crate
    again = await _crate(api, f"/jobs/{run_id}/ro-crate", tmp_path / "jobs")
    assert (again / "ro-crate-metadata.json").is_file()


async def test_a_run_that_has_not_ended_is_409_and_a_missing_one_404(api: httpx.AsyncClient) -> None:
    form = {
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://sleep",
        "workflow_params": json.dumps({"seconds": 60}),
    }
    run_id = (await api.post(f"{WES}/runs", data=form)).json()["run_id"]
    queued = await api.get(f"{WES}/runs/{run_id}/ro-crate")
    assert queued.status_code == 409
    assert queued.json()["status_code"] == 409
    assert "ended" in queued.json()["msg"]
    problem = await api.get(f"/jobs/{run_id}/ro-crate")
    assert problem.status_code == 409
    assert problem.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"{WES}/runs/nope/ro-crate")).status_code == 404


async def test_a_request_is_one_crate_with_each_run(
    api: httpx.AsyncClient, services: AppContext, tmp_path: Path
) -> None:
    samples = [{"sample_id": f"S{i}", "fastq_files": [f"s3://lab/reads/S{i}_R1.fastq.gz"]} for i in range(2)]
    payload = {
        "pipeline_name": "rnaseq_deseq2",
        "pipeline_version": "1.0.0",  # the demo simulation
        "parameters": {"reference": "gencode_v44"},
        "samples": samples,
    }
    request_id = (await api.post("/requests", json=payload)).json()["request_id"]
    early = await api.get(f"/requests/{request_id}/ro-crate")
    assert early.status_code == 409, early.text
    detail = await drive_request(api, Worker(services), request_id, {"COMPLETE"})
    run_ids = {run["run_id"] for run in detail["runs"]}
    folder = await _crate(api, f"/requests/{request_id}/ro-crate", tmp_path / "request")
    crate = ROCrate(folder)
    workflow = crate.mainEntity
    actions = [a for a in crate.get_by_type("CreateAction") if a["instrument"] is workflow]
    assert {a.id for a in actions} == {f"#run-{run_id}" for run_id in run_ids}
    slots = _ids(workflow["input"])
    assert len(slots) == len(set(slots))  # one slot per parameter, shared by the runs
    samples_seen = {v["value"] for a in actions for v in a["object"] if v["name"] == "sample_id"}
    assert samples_seen == {"S0", "S1"}
    for run_id in run_ids:
        assert json.loads((folder / "events" / f"{run_id}.json").read_text())["run_id"] == run_id


async def test_a_workflow_url_naming_a_local_file_is_never_read(
    api: httpx.AsyncClient, services: AppContext, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the crate\n")
    form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": str(secret)}
    run_id = (await api.post(f"{WES}/runs", data=form)).json()["run_id"]
    assert await follow(api, Worker(services), run_id, TERMINAL) == "COMPLETE"
    folder = await _crate(api, f"{WES}/runs/{run_id}/ro-crate", tmp_path / "crate")
    assert not any("not for the crate" in p.read_text() for p in folder.rglob("*") if p.is_file())
    assert not (folder / "workflow").exists()


def test_output_names_become_safe_distinct_zip_members() -> None:
    taken: set[str] = set()
    names = ["../../etc/x", "/abs/y", "a/./b", "a/b", "a/b", "..", "c\\d"]
    members = [_member("outputs/", name, taken) for name in names]
    assert members == [
        "outputs/etc/x",
        "outputs/abs/y",
        "outputs/a/b",
        "outputs/a/b.2",
        "outputs/a/b.3",
        "outputs/output",
        "outputs/c/d",
    ]
