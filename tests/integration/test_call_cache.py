"""Call caching of whole runs (issue 20): an identical ``use_cached`` submission completes at once
with the outputs of a completed run of the same research group — copied, so deleting the source
keeps them — and says so on every door; one changed input byte, parameter, engine version or
group runs for real. One real cwltool run per database; the misses need no engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowdeck.backends.registry import Registry, load_class
from flowdeck.db.tables import runs
from flowdeck.services.core.context import AppContext
from flowdeck.worker.expand import expand_once
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import TERMINAL, WES, follow

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not load_class("cwltool").available(), reason="cwltool is not installed"),
]

# The first ``bytes`` bytes of a file: one parameter, one input file.
HEAD_CWL = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [head, -c]
inputs:
  bytes: {type: int, inputBinding: {position: 1}}
  text: {type: File, inputBinding: {position: 2}}
stdout: head.txt
outputs:
  head: {type: stdout}
"""


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.txt").write_text("ACGTACGTAC\n")
    (folder / "b.txt").write_text("ACGTACGTAG\n")  # one byte apart
    return folder


@pytest.fixture
def cache_services(services: AppContext, inputs: Path) -> AppContext:
    services.settings.backends = ["demo", "cwltool"]
    services.settings.dataset_file_roots = [inputs]
    services.backends = Registry(services.settings)
    return services


async def _submit(
    api: httpx.AsyncClient, text: Path, nbytes: int = 8, group: str = "lab-a", use_cached: str = "true"
) -> dict[str, Any]:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "head.cwl",
        "workflow_params": json.dumps({"bytes": nbytes, "text": {"class": "File", "location": text.as_uri()}}),
        "research_group": group,
        "use_cached": use_cached,
    }
    response = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("head.cwl", HEAD_CWL)})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    return dict((await api.get(f"/jobs/{run_id}")).json())


async def _first_reason(api: httpx.AsyncClient, run_id: str) -> str:
    return str((await api.get(f"/jobs/{run_id}/events")).json()["events"][0]["reason"])


async def _output(api: httpx.AsyncClient, run_id: str) -> str:
    listing = (await api.get(f"{WES}/runs/{run_id}/outputs")).json()
    (only,) = listing["files"]
    return (await api.get(only["url"], follow_redirects=True)).text


async def test_an_identical_submission_is_answered_from_the_cache_and_survives_its_source(
    api: httpx.AsyncClient, cache_services: AppContext, inputs: Path
) -> None:
    source = await _submit(api, inputs / "a.txt")
    assert source["cache_key"]
    assert source["cached_from"] is None
    assert "runs" in await _first_reason(api, source["id"])
    assert await follow(api, Worker(cache_services), source["id"], TERMINAL) == "COMPLETE"

    hit = await _submit(api, inputs / "a.txt")
    assert hit["wes_state"] == "COMPLETE"
    assert hit["cached_from"] == source["id"]
    assert hit["cache_key"] == source["cache_key"]
    assert f"call cache hit: completed at once with the outputs of run {source['id']}" in await _first_reason(
        api, hit["id"]
    )
    run_log = (await api.get(f"{WES}/runs/{hit['id']}")).json()
    assert run_log["flowdeck"] == {"cache_key": source["cache_key"], "cached_from": source["id"]}
    page = (await api.get(f"/ui/runs/{hit['id']}")).text
    assert "Call cache" in page
    assert source["id"] in page
    assert await _output(api, hit["id"]) == await _output(api, source["id"]) == "ACGTACGT"

    assert (await api.delete(f"/jobs/{source['id']}")).status_code in {200, 204}
    assert await _output(api, hit["id"]) == "ACGTACGT"  # its own copy


async def test_a_changed_input_parameter_engine_version_or_group_runs_for_real(
    api: httpx.AsyncClient, cache_services: AppContext, inputs: Path
) -> None:
    source = await _submit(api, inputs / "a.txt")
    assert await follow(api, Worker(cache_services), source["id"], TERMINAL) == "COMPLETE"
    misses = [
        await _submit(api, inputs / "b.txt"),  # one byte changed
        await _submit(api, inputs / "a.txt", nbytes=9),  # one parameter changed
    ]
    cache_services.backends = Registry(cache_services.settings)
    cache_services.backends.get("cwltool").engine_version = lambda: "99.0-other"  # type: ignore[method-assign]
    misses.append(await _submit(api, inputs / "a.txt"))  # another engine version
    assert len({miss["cache_key"] for miss in misses} | {source["cache_key"], None}) == len(misses) + 2
    cache_services.backends = Registry(cache_services.settings)
    other_group = await _submit(api, inputs / "a.txt", group="lab-b")  # the same key, never across groups
    assert other_group["cache_key"] == source["cache_key"]
    for miss in [*misses, other_group]:
        assert miss["wes_state"] == "QUEUED"
        assert miss["cached_from"] is None
        assert "call cache: no completed run with key" in await _first_reason(api, miss["id"])
    same_group = await _submit(api, inputs / "a.txt")  # the control: the source itself still answers
    assert same_group["cached_from"] == source["id"]


async def test_what_cannot_be_keyed_runs_for_real_and_says_why(
    api: httpx.AsyncClient, cache_services: AppContext, inputs: Path
) -> None:
    form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://x", "use_cached": "true"}
    named = (await api.post(f"{WES}/runs", data=form)).json()["run_id"]
    assert (await api.get(f"/jobs/{named}")).json()["cache_key"] is None
    assert "not cacheable, so it runs for real: the workflow 'demo://x' is named" in await _first_reason(api, named)
    plain = await _submit(api, inputs / "a.txt", use_cached="false")
    assert plain["cache_key"] is None
    assert "call cache" not in await _first_reason(api, plain["id"])
    refused = await api.post(f"{WES}/runs", data={**form, "use_cached": "sometimes"})
    assert refused.status_code == 400
    assert "use_cached must be true or false" in refused.text


async def test_an_input_changed_before_staging_drops_the_runs_key(
    api: httpx.AsyncClient, cache_services: AppContext, inputs: Path
) -> None:
    moving = inputs / "moving.txt"
    moving.write_text("ACGTACGTAC\n")
    run = await _submit(api, moving)
    moving.write_text("TTTTTTTTTT\n")  # after submit (the key's checksum), before the worker stages it
    assert await follow(api, Worker(cache_services), run["id"], TERMINAL) == "COMPLETE"
    assert (await api.get(f"/jobs/{run['id']}")).json()["cache_key"] is None
    events = (await api.get(f"/jobs/{run['id']}/events")).json()["events"]
    assert any("/text/location changed between submit and staging" in (e["reason"] or "") for e in events)
    again = await _submit(api, moving)  # its key now: that of the content the run really read
    assert again["cached_from"] is None
    assert again["wes_state"] == "QUEUED"


async def test_a_request_asks_for_the_cache_per_sample(api: httpx.AsyncClient, cache_services: AppContext) -> None:
    samples = [{"lines": ["cached"]}, {"lines": ["fresh"], "use_cached": False}]
    body = {"pipeline_name": "hello_cwl", "use_cached": True, "samples": samples}
    response = await api.post("/requests", json=body)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert await expand_once(cache_services, "test-worker") >= 2
    async with cache_services.db.read() as conn:
        query = sa.select(runs.c.request_index, runs.c.cache_key).where(runs.c.request_id == request_id)
        keys = dict((await conn.execute(query)).tuples().all())
    assert keys[0] is not None
    assert keys[1] is None
    bad = await api.post("/requests", json={**body, "samples": [{"lines": ["x"], "use_cached": "yes"}]})
    assert bad.status_code == 422
    assert "/samples/0/use_cached" in bad.text
