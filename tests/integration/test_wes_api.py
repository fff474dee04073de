"""The WES API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pytest

from flowdeck.services.core import paging
from flowdeck.services.core.context import AppContext
from flowdeck.worker.loop import Worker

WES = "/ga4gh/wes/v1"


def demo_form(**extra: str) -> dict[str, str]:
    form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}
    form.update(extra)
    return form


async def submit(api: httpx.AsyncClient, **extra: str) -> str:
    response = await api.post(
        f"{WES}/runs", data=demo_form(**extra), files={"workflow_attachment": ("notes.txt", b"hi")}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def test_submit_multipart_then_read_it_back(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, tags=json.dumps({"project": "test"}), workflow_params=json.dumps({"x": 1}))
    log = (await api.get(f"{WES}/runs/{run_id}")).json()
    assert log["run_id"] == run_id
    assert log["state"] == "QUEUED"
    assert log["request"] == {
        "workflow_params": {"x": 1},
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "tags": {"project": "test"},
        "workflow_engine_parameters": {},
        "workflow_engine": "demo",
        "workflow_url": "demo://hello",
    }
    assert log["task_logs_url"].endswith(f"/runs/{run_id}/tasks")
    assert None not in log["run_log"].values()
    status = (await api.get(f"{WES}/runs/{run_id}/status")).json()
    assert status == {"run_id": run_id, "state": "QUEUED"}


async def test_submit_json_body(api: httpx.AsyncClient) -> None:
    body = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://x", "tags": {"a": "b"}}
    response = await api.post(f"{WES}/runs", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"workflow_type": "DEMO", "workflow_type_version": "1.0"}, "missing required field(s): workflow_url"),
        (demo_form(workflow_type="COBOL"), "unsupported workflow_type 'COBOL'"),
        (demo_form(workflow_type_version="9.9"), "workflow_type_version '9.9' is not supported"),
        (demo_form(workflow_params="{not json"), "workflow_params is not valid JSON"),
        (demo_form(workflow_params="[1]"), "workflow_params must be a JSON object"),
        (demo_form(tags=json.dumps({"a": 1})), "tags values must be strings"),
        (demo_form(workflow_engine="nextflow"), "workflow engine 'nextflow' is not enabled here"),
        (demo_form(workflow_engine_parameters=json.dumps({"rm -rf": "/"})), "not allowed for demo"),
        (demo_form(workflow_engine_version="0.1"), "workflow_engine is required"),
        (demo_form(unknown="1"), "unknown form field 'unknown'"),
    ],
)
async def test_bad_submissions_are_400_with_wes_error_shape(
    api: httpx.AsyncClient, form: dict[str, str], message: str
) -> None:
    response = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("a.txt", b"x")})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status_code"] == 400
    assert message in body["msg"]
    listed = (await api.get(f"{WES}/runs")).json()
    assert listed["runs"] == []  # nothing half-created


@pytest.mark.parametrize("filename", ["../escape.cwl", "/etc/passwd", "a/../../b", ""])
async def test_attachment_names_cannot_escape(api: httpx.AsyncClient, filename: str) -> None:
    response = await api.post(f"{WES}/runs", data=demo_form(), files={"workflow_attachment": (filename, b"x")})
    assert response.status_code == 400


async def test_relative_workflow_url_must_be_an_attachment(api: httpx.AsyncClient) -> None:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "main.cwl",
        "workflow_engine": "demo",
    }
    response = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("other.cwl", b"x")})
    assert response.status_code == 400
    assert "is not one of the attachments" in response.json()["msg"]
    response = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("main.cwl", b"x")})
    assert response.status_code == 200


async def test_non_multipart_non_json_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{WES}/runs", content=b"hello", headers={"content-type": "text/plain"})
    assert response.status_code == 400


async def test_unknown_run_is_404_everywhere(api: httpx.AsyncClient) -> None:
    for path in ("", "/status", "/tasks", "/tasks/nope"):
        response = await api.get(f"{WES}/runs/no-such-run{path}")
        assert response.status_code == 404, path
        assert response.json() == {"msg": "run no-such-run not found", "status_code": 404}
    assert (await api.post(f"{WES}/runs/no-such-run/cancel")).status_code == 404


async def test_list_pages_are_stable_and_complete(api: httpx.AsyncClient) -> None:
    ids = [await submit(api) for _ in range(7)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"page_size": 3} | ({"page_token": token} if token else {})
        body = (await api.get(f"{WES}/runs", params=params)).json()
        seen += [run["run_id"] for run in body["runs"]]
        assert all(run["tags"] == {} for run in body["runs"])
        pages += 1
        token = body["next_page_token"]
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    "params",
    [{"page_size": 0}, {"page_size": 100000}, {"page_token": "garbage!"}, {"state": "BOGUS"}, {"tag": "novalue"}],
)
async def test_bad_list_parameters_are_400(api: httpx.AsyncClient, params: dict[str, object]) -> None:
    response = await api.get(f"{WES}/runs", params=params)
    assert response.status_code == 400
    assert response.json()["status_code"] == 400


async def test_list_filters_by_state_and_tag(api: httpx.AsyncClient) -> None:
    tagged = await submit(api, tags=json.dumps({"project": "p1"}))
    await submit(api, tags=json.dumps({"project": "p2"}))
    body = (await api.get(f"{WES}/runs", params={"tag": "project:p1"})).json()
    assert [r["run_id"] for r in body["runs"]] == [tagged]
    assert len((await api.get(f"{WES}/runs", params={"state": "QUEUED"})).json()["runs"]) == 2
    assert (await api.get(f"{WES}/runs", params={"state": "COMPLETE"})).json()["runs"] == []


async def test_service_info_has_every_required_field(api: httpx.AsyncClient) -> None:
    await submit(api)
    info = (await api.get(f"{WES}/service-info")).json()
    for key in (
        "id",
        "name",
        "type",
        "organization",
        "version",
        "workflow_type_versions",
        "supported_wes_versions",
        "supported_filesystem_protocols",
        "workflow_engine_versions",
        "default_workflow_engine_parameters",
        "system_state_counts",
        "auth_instructions_url",
        "tags",
    ):
        assert key in info, key
    assert info["type"] == {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"}
    assert info["system_state_counts"]["QUEUED"] == 1
    # Only what a submission can use: attachments, and workflow_url schemes of the allowed prefixes.
    assert info["supported_filesystem_protocols"] == ["https"]
    assert info["workflow_engine_versions"]["demo"] == {"workflow_engine_version": ["simulation-1"]}
    assert info["tags"]["simulated_engines"] == "demo"
    assert info["tags"]["isolation"] == "bubblewrap sandbox per run"
    assert isinstance(info["default_workflow_engine_parameters"], list)
    page = await api.get(info["auth_instructions_url"].replace("http://testserver", ""))
    assert page.status_code == 200


async def test_run_goes_to_complete_with_tasks(api: httpx.AsyncClient, services: AppContext) -> None:
    run_id = await submit(api, workflow_engine_parameters=json.dumps({"outcome": "success", "duration_seconds": "0.3"}))
    await drive(services, run_id, {"COMPLETE"}, api)
    log = (await api.get(f"{WES}/runs/{run_id}")).json()
    assert log["outputs"]["simulated"]["value"] is True
    assert log["run_log"]["start_time"].endswith("Z")
    tasks = (await api.get(f"{WES}/runs/{run_id}/tasks", params={"page_size": 2})).json()
    assert [t["name"] for t in tasks["task_logs"]] == ["prepare_inputs", "analyse"]
    rest = (await api.get(f"{WES}/runs/{run_id}/tasks", params={"page_token": tasks["next_page_token"]})).json()
    assert [t["name"] for t in rest["task_logs"]] == ["write_report"]
    assert rest["next_page_token"] == ""
    task_id = rest["task_logs"][0]["id"]
    one = (await api.get(f"{WES}/runs/{run_id}/tasks/{task_id}")).json()
    assert one["exit_code"] == 0


async def test_run_fails_with_executor_error(api: httpx.AsyncClient, services: AppContext) -> None:
    run_id = await submit(api, workflow_engine_parameters=json.dumps({"outcome": "failure", "duration_seconds": "0.1"}))
    await drive(services, run_id, {"EXECUTOR_ERROR"}, api)
    log = (await api.get(f"{WES}/runs/{run_id}")).json()
    assert log["run_log"]["system_logs"]


async def test_cancel_queued_and_running_runs(api: httpx.AsyncClient, services: AppContext) -> None:
    queued = await submit(api)
    assert (await api.post(f"{WES}/runs/{queued}/cancel")).json() == {
        "run_id": queued,
        "state": "CANCELING",
        "detail": "cancel requested: the worker stops it on its engine",
    }
    assert (await api.get(f"{WES}/runs/{queued}/status")).json()["state"] == "CANCELING"
    running = await submit(api, workflow_engine_parameters=json.dumps({"duration_seconds": "60"}))
    worker = Worker(services)
    await worker.iterate()
    assert (await api.get(f"{WES}/runs/{running}/status")).json()["state"] == "RUNNING"
    await api.post(f"{WES}/runs/{running}/cancel")
    await drive(services, queued, {"CANCELED"}, api, worker)
    await drive(services, running, {"CANCELED"}, api, worker)
    # Terminal states never change; cancelling again changes nothing, and the answer says so.
    again = await api.post(f"{WES}/runs/{running}/cancel")
    assert again.status_code == 200
    assert again.json() == {
        "run_id": running,
        "state": "CANCELED",
        "detail": "already CANCELED: there is nothing to cancel",
    }
    assert (await api.get(f"{WES}/runs/{running}/status")).json()["state"] == "CANCELED"


async def drive(
    services: AppContext, run_id: str, until: set[str], api: httpx.AsyncClient, worker: Worker | None = None
) -> str:
    """Iterate a worker until the run reaches one of ``until`` (bounded)."""
    import asyncio

    worker = worker or Worker(services)
    for _ in range(400):
        await worker.iterate()
        state = str((await api.get(f"{WES}/runs/{run_id}/status")).json()["state"])
        if state in until:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} stuck in {state}")


# --- Regressions found by the conformance suite (tests/contract) and its probes; each was a 500,
# an undocumented status, or a stored run that no one could read back.


@pytest.mark.parametrize("value", ["abc", "2\r", " 2", "", "1.5"])
async def test_malformed_page_size_is_400_on_runs_and_404_on_tasks(api: httpx.AsyncClient, value: str) -> None:
    run_id = await submit(api)
    response = await api.get(f"{WES}/runs", params={"page_size": value})
    assert response.status_code == 400
    assert response.json() == {"msg": "page_size must be an integer", "status_code": 400}
    # The spec documents no 400 on ListTasks: like its other paging errors, a 404.
    response = await api.get(f"{WES}/runs/{run_id}/tasks", params=[("page_size", value), ("page_size", value)])
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


@pytest.mark.parametrize(
    "extra",
    [
        {"workflow_params": '{"a": NaN}'},
        {"workflow_params": '{"a": Infinity}'},
        {"workflow_params": '{"a": ' + "[" * 5000 + "]" * 5000 + "}"},
        {"workflow_params": '{"a": ' + "[" * 150 + "]" * 150 + "}"},
        {"workflow_params": json.dumps({"a": "x\x00y"})},
        {"workflow_params": json.dumps({"a\x00": 1})},
        {"tags": json.dumps({"k": "v\x00"})},
        {"tags": json.dumps({"k" * 257: "v"})},
        {"description": "x\x00y"},
        {"research_group": "g\x00"},
        {"research_group": "g" * 129},
        {"workflow_url": "demo://a\x00b"},
    ],
)
async def test_unstorable_submissions_are_400_and_store_nothing(api: httpx.AsyncClient, extra: dict[str, str]) -> None:
    response = await api.post(f"{WES}/runs", data=demo_form(**extra))
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400
    listed = await api.get(f"{WES}/runs")
    assert listed.status_code == 200
    assert listed.json()["runs"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"workflow_url": {"a": 1}},
        {"workflow_type_version": ["1.0"]},
        {"workflow_params": {"a": "\x00"}},
    ],
)
async def test_json_submission_with_wrong_types_is_400(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    base: dict[str, object] = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://x"}
    response = await api.post(f"{WES}/runs", json=base | body)
    assert response.status_code == 400, response.text
    response = await api.post(
        f"{WES}/runs",
        content=b'{"workflow_type": "DEMO", "workflow_params": {"a": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


async def test_nul_in_ids_tokens_and_filters_is_a_4xx(api: httpx.AsyncClient) -> None:
    run_id = await submit(api)
    for path in ("/runs/a%00b", "/runs/a%00b/status", "/runs/a%00b/tasks", f"/runs/{run_id}/tasks/a%00b"):
        response = await api.get(f"{WES}{path}")
        assert response.status_code == 404, path
    assert (await api.post(f"{WES}/runs/a%00b/cancel")).status_code == 404
    forged = paging.encode({"c": "2024-01-01T00:00:00+00:00", "i": "a\x00b"})
    for params in ({"page_token": forged}, {"tag": "k\x00:v"}, {"tag": "k:v\x00"}):
        response = await api.get(f"{WES}/runs", params=params)
        assert response.status_code == 400, params
    nested = "W1tb" * 2000  # base64 of 6,000 "[": nested past the JSON reader's limit
    assert (await api.get(f"{WES}/runs", params={"page_token": nested})).status_code == 400
    huge = paging.encode({"p": 2**40})
    assert (await api.get(f"{WES}/runs/{run_id}/tasks", params={"page_token": huge})).status_code == 404
