"""Tags and descriptions have size limits at every door, and a refused submission stores nothing.

A 2 MB tag value was once accepted and made every later run list page 2 MB.
"""

from __future__ import annotations

import json

import httpx

from tests.integration.test_jobs_api import GATK_SIM
from tests.integration.test_requests_api import body as request_body
from tests.integration.test_wes_api import WES, demo_form


async def _stored(api: httpx.AsyncClient) -> tuple[int, int]:
    runs = (await api.get(f"{WES}/runs", params={"page_size": "100"})).json()["runs"]
    requests = (await api.get("/requests")).json()["requests"]
    return len(runs), len(requests)


async def test_wes_refuses_a_huge_tag_value_and_too_many_tags(api: httpx.AsyncClient) -> None:
    huge = await api.post(f"{WES}/runs", json={**demo_form(), "tags": {"note": "x" * 2_000_000}})
    assert huge.status_code == 400, huge.text
    assert "/tags/note" in huge.json()["msg"]
    many = await api.post(f"{WES}/runs", data=demo_form(tags=json.dumps({f"k{i}": "v" for i in range(65)})))
    assert many.status_code == 400
    assert "at most 64 tags" in many.json()["msg"]
    slashed = await api.post(f"{WES}/runs", data=demo_form(tags=json.dumps({"a/b": "x" * 1025})))
    assert "/tags/a~1b" in slashed.json()["msg"]
    assert await _stored(api) == (0, 0)


async def test_every_door_limits_the_description(api: httpx.AsyncClient) -> None:
    long = "d" * 4097
    wes = await api.post(f"{WES}/runs", data={**demo_form(), "description": long})
    assert wes.status_code == 400
    for params in ({}, {"dry_run": "true"}):
        job = await api.post("/jobs", params=params, json={**GATK_SIM, "description": long})
        assert job.status_code == 422, job.text
        assert [e["pointer"] for e in job.json()["errors"]] == ["/description"]
    request = await api.post("/requests", json=request_body(2, description=long))
    assert request.status_code == 422, request.text
    assert await _stored(api) == (0, 0)


async def test_the_limit_itself_is_accepted(api: httpx.AsyncClient) -> None:
    tags = {f"k{i}": "v" * 1024 for i in range(64)}
    ok = await api.post(f"{WES}/runs", data={**demo_form(tags=json.dumps(tags)), "description": "d" * 4096})
    assert ok.status_code == 200, ok.text
