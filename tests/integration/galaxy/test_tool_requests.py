"""Galaxy tools as pipelines, through Galaxy's Tool Request API, against the real Galaxy.

The suite's Galaxy runs a celery worker (``FLOWDECK_GALAXY_CELERY``, default 1), without which
a tool request stays ``new``. Runs go in by ``POST /jobs`` and ``POST /requests``; the worker
(in-process) dispatches and syncs them; every check reads flowdeck's API or Galaxy's own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunHandle, RunSpec
from flowdeck.domain.states import State
from flowdeck.services.pipelines.catalog import default_dir
from flowdeck.settings import Settings
from tests.integration.galaxy.conftest import INPUT_TEXT
from tests.integration.galaxy.helpers import sync_until, wait_terminal
from tests.integration.galaxy.test_jobs_seed000 import (
    FINAL,
    WES,
    Stack,
    open_stack,
    output_bytes,
    submit,
    upload,
)
from tests.integration.galaxy.test_jobs_seed000 import galaxy_settings as stack_settings
from tests.integration.test_ui import csrf_of
from tests.support.galaxy import GalaxyServer

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]

PREFIX_PIPELINE = """\
name: galaxy_prefix
version: "1.0.0"
description: Put a text before every line (flowdeck_prefix, a required text parameter).
backend: galaxy
target:
  galaxy_tool: flowdeck_prefix
  input: input
"""


def catalog_in(tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog"
    shutil.copytree(default_dir(), catalog)
    (catalog / "galaxy_prefix.yaml").write_text(PREFIX_PIPELINE)
    return catalog


@pytest.fixture
async def stack(galaxy_server: GalaxyServer, tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack(stack_settings(tmp_path, galaxy_server, pipelines_dir=catalog_in(tmp_path))) as ready:
        yield ready


@pytest.fixture
async def db_stack(galaxy_server: GalaxyServer, tmp_path: Path, db_settings: Settings) -> AsyncIterator[Stack]:
    """The stack on each database the suite tests (SQLite, PostgreSQL, MariaDB), migrated."""
    settings = stack_settings(
        tmp_path, galaxy_server, pipelines_dir=catalog_in(tmp_path), database_url=db_settings.database_url
    )
    async with open_stack(settings, migrate=False) as ready:
        yield ready


def galaxy_get(server: GalaxyServer, path: str, **params: Any) -> Any:
    response = httpx.get(f"{server.url}/api/{path}", params=params, headers={"x-api-key": server.api_key}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def tool_requests_of(server: GalaxyServer, history_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = galaxy_get(server, f"histories/{history_id}/tool_requests")
    return found


async def events(api: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    body = (await api.get(f"/jobs/{job_id}/events")).json()
    return list(body["events"] if isinstance(body, dict) else body)


async def test_tool_runs_to_completed_with_its_output_and_request_events(db_stack: Stack) -> None:
    stack = db_stack
    dataset_id = await upload(stack.api)

    job = await submit(stack.api, {"pipeline_name": "galaxy_upper", "dataset_id": dataset_id})
    done = await stack.drive(job["id"], FINAL)

    assert done["state"] == "completed", done
    assert done["tool_request_id"] == done["backend_run_id"], done
    assert done["invocation_id"] is None, done
    assert await output_bytes(stack.api, job["id"]) == {"output": INPUT_TEXT.upper().encode()}
    tasks = (await stack.api.get(f"{WES}/runs/{job['id']}/tasks")).json()["task_logs"]
    assert [(t["name"], t["exit_code"]) for t in tasks] == [("flowdeck_upper", 0)]
    assert await stack.task_states(job["id"]) == {"flowdeck_upper": "COMPLETE"}
    reasons = " | ".join(str(e["reason"]) for e in await events(stack.api, job["id"]))
    assert "Galaxy tool request is submitted" in reasons, reasons


async def test_served_schema_is_galaxys(stack: Stack, galaxy_server: GalaxyServer) -> None:
    served = await stack.api.get("/pipelines/galaxy_sort/schema")

    assert served.status_code == 200, served.text
    version = galaxy_get(galaxy_server, "tools/sort1")["version"]
    assert served.json() == galaxy_get(galaxy_server, "tools/sort1/parameter_request_schema", tool_version=version)


async def test_ui_launch_form_of_a_tool_is_made_from_galaxys_schema(stack: Stack, galaxy_server: GalaxyServer) -> None:
    version = galaxy_get(galaxy_server, "tools/flowdeck_prefix")["version"]
    schema = galaxy_get(galaxy_server, "tools/flowdeck_prefix/parameter_request_schema", tool_version=version)

    page = await stack.api.get("/ui/launch/galaxy_prefix")

    assert page.status_code == 200, page.text
    assert schema["properties"], schema
    for name in schema["properties"]:
        assert f'name="p.{name}"' in page.text, name
    dataset = {"galaxy_dataset_id": "f" * 16}
    fields = {"csrf": csrf_of(page.text), "p.input": json.dumps(dataset), "p.prefix": "> ", "action": "check"}
    checked = await stack.api.post("/ui/launch/galaxy_prefix", data=fields)
    assert checked.status_code == 200, checked.text
    assert "galaxy_request" in checked.text  # the dry run: the tool request flowdeck will post


async def test_strict_wrong_parameter_refused_then_relaxed_converted_and_run(
    stack: Stack, galaxy_server: GalaxyServer
) -> None:
    dataset_id = await upload(stack.api)
    body = {"pipeline_name": "galaxy_prefix", "dataset_id": dataset_id, "parameters": {"prefix": None}}
    tool_jobs_before = len(galaxy_get(galaxy_server, "jobs", tool_id="flowdeck_prefix"))

    refused = await stack.api.post("/jobs", json=body)

    assert refused.status_code == 422, refused.text
    assert [p["pointer"] for p in refused.json()["errors"]] == ["/parameters/prefix"], refused.json()
    assert (await stack.api.get("/jobs")).json()["total"] == 0  # nothing stored, nothing sent

    dry = await stack.api.post("/jobs", params={"dry_run": "true"}, json={**body, "strict": False})
    assert dry.status_code == 200, dry.text
    assert dry.json()["galaxy_request"]["strict"] is False
    assert dry.json()["galaxy_request"]["inputs"].get("prefix") is None
    job = await submit(stack.api, {**body, "strict": False})
    done = await stack.drive(job["id"], FINAL)
    assert done["state"] == "completed", done
    assert done["galaxy_request"]["prefix"] == "", done  # Galaxy's relaxed -> strict conversion
    assert await output_bytes(stack.api, job["id"]) == {"output": INPUT_TEXT.encode()}
    assert len(galaxy_get(galaxy_server, "jobs", tool_id="flowdeck_prefix")) == tool_jobs_before + 1


async def test_request_galaxy_refuses_ends_failed_with_galaxys_message(stack: Stack) -> None:
    # a well-formed id that Galaxy cannot decode: flowdeck's check passes, Galaxy's does not
    body = {"pipeline_name": "galaxy_sort", "parameters": {"input": {"galaxy_dataset_id": "f" * 16}, "column": 1}}

    answer = await stack.api.post("/jobs", json=body)
    # 502 when Galaxy refused within the inline dispatch, 201 when the worker dispatches it later
    assert answer.status_code in (201, 502), answer.text
    job = answer.json().get("job") or answer.json()
    done = await stack.drive(job["id"], FINAL)

    assert done["state"] == "failed", done
    assert "Galaxy refused to submit a request for tool sort1" in done["error_message"], done
    assert "unable to decode" in done["error_message"], done


async def test_tool_mapped_over_a_list_of_three_completes_with_three_tasks(
    stack: Stack, galaxy_server: GalaxyServer
) -> None:
    collection_id = make_list(galaxy_server, ["one\n", "two\n", "three\n"])
    body = {
        "pipeline_name": "galaxy_upper",
        "parameters": {"input": {"map_over": {"galaxy_collection_id": collection_id}}},
    }

    job = await submit(stack.api, body)
    done = await stack.drive(job["id"], FINAL)

    assert done["state"] == "completed", done
    assert await stack.task_states(job["id"]) == {f"flowdeck_upper #{n}": "COMPLETE" for n in (1, 2, 3)}
    contents = sorted((await output_bytes(stack.api, job["id"])).values())
    assert contents == [b"ONE\n", b"THREE\n", b"TWO\n"]


def make_list(server: GalaxyServer, texts: list[str]) -> str:
    """A list collection of pasted texts in a history of its own."""
    from bioblend.galaxy import GalaxyInstance

    gi = GalaxyInstance(server.url, key=server.api_key)
    history = gi.histories.create_history(f"list {uuid4().hex[:8]}")["id"]
    ids = [gi.tools.paste_content(text, history, file_type="txt")["outputs"][0]["id"] for text in texts]
    for dataset_id in ids:
        gi.datasets.wait_for_dataset(dataset_id, maxwait=180)
    elements = [{"name": f"e{i}", "src": "hda", "id": dataset_id} for i, dataset_id in enumerate(ids)]
    made = gi.histories.create_dataset_collection(
        history, {"collection_type": "list", "name": "three", "element_identifiers": elements}
    )
    return str(made["id"])


# --- the backend alone: a retried dispatch, and cancel


def tool_spec(backend: GalaxyBackend, tool: str, params: dict[str, Any], run_id: str | None = None) -> RunSpec:
    run_id = run_id or f"t-{uuid4().hex[:12]}"
    data = backend.settings.data_dir
    return RunSpec(
        run_id=run_id,
        workflow_type="GALAXY",
        workflow_type_version="tool",
        workflow_url=f"galaxy://tool/{tool}",
        workflow_params=params,
        workdir=data / "runs" / run_id,
        attachments_dir=data,
        pipeline_target={"kind": "galaxy_tool", "tool": tool, "input": "input"},
        dataset={"uri": f"file://{data / 'inputs' / 'fruit.tsv'}", "file_type": "txt"},
    )


def test_dispatch_retried_after_a_crash_makes_no_second_tool_request(
    backend: GalaxyBackend, galaxy_server: GalaxyServer
) -> None:
    spec = tool_spec(backend, "flowdeck_upper", {})
    backend.validate(spec)
    first = backend.submit(spec)
    # the worker died before recording `first`: the lease expires and another worker submits again
    retried = GalaxyBackend(backend.settings).submit(spec)

    assert retried.backend_run_id == first.backend_run_id
    history_id = first.backend_data["history_id"]
    assert [r["id"] for r in tool_requests_of(galaxy_server, history_id)] == [first.backend_run_id]
    handle = RunHandle(spec.run_id, retried.backend_run_id, retried.backend_data, spec.workdir, retried.state)
    assert wait_terminal(backend, handle).state == State.COMPLETE


def test_cancel_reaches_every_job_of_the_request(backend: GalaxyBackend, galaxy_server: GalaxyServer) -> None:
    spec = tool_spec(backend, "flowdeck_sleep", {"seconds": 300})
    submitted = backend.submit(spec)
    handle = RunHandle(spec.run_id, submitted.backend_run_id, submitted.backend_data, spec.workdir, submitted.state)
    handle, _ = sync_until(backend, handle, lambda r: any(t.state == State.RUNNING for t in r.tasks or []))

    asked = backend.cancel(handle)
    canceling = RunHandle(handle.run_id, handle.backend_run_id, handle.backend_data, handle.workdir, State.CANCELING)
    sync_until(backend, canceling, lambda r: r.state == State.CANCELED, timeout=120)

    assert "1 job" in str(asked.message), asked
    jobs = galaxy_get(galaxy_server, "jobs", tool_request_id=str(handle.backend_run_id))
    assert [job["state"] for job in jobs] in (["deleted"], ["deleting"]), jobs
