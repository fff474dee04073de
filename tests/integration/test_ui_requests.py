"""Batch launch from a sample sheet, the request page, and registering a dataset by URI in the UI
(docs/ui.md): through the same requests and datasets services as ``POST /requests`` and
``POST /datasets``, per-row problems listed with nothing created, and another group seeing none of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from flowdeck.db.tables import requests as requests_table
from flowdeck.db.tables import runs as runs_table
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from flowdeck.worker.expand import expand_once
from tests.integration.test_ui import csrf_of, sign_in
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

Lab = tuple[AppContext, httpx.AsyncClient]
SHEET = "/ui/launch/rnaseq_deseq2/sheet?version=1.0.0"  # the demo simulation: no tool runs
GOOD = "Sample ID,fastq_files\n" + "".join(f"S{i},s3://lab/S{i}_R1.fq.gz;s3://lab/S{i}_R2.fq.gz\n" for i in range(3))
BAD = "sample_id,fastq_files,colour\nS0,s3://lab/S0.fq.gz,red\nnot ok!,s3://lab/S1.fq.gz,blue\nS2,ftp://x/S2.fq,green\n"


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[Lab]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        assert (await sign_in(http, "alice")).status_code == 303
        yield services, http


async def _count(services: AppContext, table: sa.Table) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _submit(http: httpx.AsyncClient, sheet: str, filename: str = "sheet.csv", **fields: str) -> httpx.Response:
    page = await http.get(SHEET)
    assert page.status_code == 200
    data = {"csrf": csrf_of(page.text), "version": "1.0.0", "p.reference": "gencode_v44", **fields}
    return await http.post(
        SHEET.split("?")[0], data=data, files={"samplesheet": (filename, sheet.encode(), "text/csv")}
    )


async def test_a_good_sheet_becomes_a_request_whose_runs_the_page_shows(lab: Lab) -> None:
    services, http = lab
    launch = await http.get("/ui/launch/rnaseq_deseq2?version=1.0.0")
    assert 'href="/ui/launch/rnaseq_deseq2/sheet?version=1.0.0"' in launch.text
    done = await _submit(http, GOOD, description="three samples")
    assert done.status_code == 303, done.text
    request_id = done.headers["location"].removeprefix("/ui/requests/")
    waiting = await http.get(done.headers["location"])
    assert "waiting for a worker to create its runs" in waiting.text
    assert 'hx-trigger="every 3s"' in waiting.text

    await expand_once(services, "w")
    page = (await http.get(f"/ui/requests/{request_id}/live")).text
    assert [m for m in re.findall(r"<td>(S\d)</td>", page)] == ["S0", "S1", "S2"]
    assert "Runs created: 3 of 3" in page
    api = (await http.get(f"/requests/{request_id}", headers=basic("alice"))).json()
    assert api["research_group"] == "lab-a"
    run = api["runs"][0]["run_id"]
    assert f'href="/ui/runs/{run}"' in page
    run_page = (await http.get(f"/ui/runs/{run}")).text
    assert f'href="/ui/requests/{request_id}"' in run_page  # the run links to its request
    assert "&#34;reference&#34;: &#34;gencode_v44&#34;" in run_page  # the shared parameter, from the same form


async def test_a_bad_sheet_lists_each_rows_problem_and_creates_nothing(lab: Lab) -> None:
    services, http = lab
    refused = await _submit(http, BAD, filename="sheet.txt")  # no known suffix: the format is sniffed
    assert refused.status_code == 422
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", refused.text)
    found = [(row, line, column) for row, line, column, _ in rows]
    assert found == [("header", "1", "column 3"), ("2", "3", "sample_id"), ("3", "4", "fastq_files/0")], rows
    assert "column &#39;colour&#39; is not a parameter of rnaseq_deseq2" in rows[0][3]
    assert "(got &#39;not ok!&#39;)" in rows[1][3]
    assert 'value="gencode_v44" selected' in refused.text  # what was chosen is kept
    assert (await _count(services, requests_table), await _count(services, runs_table)) == (0, 0)
    empty = await _submit(http, "")
    assert empty.status_code == 422
    assert (await _count(services, requests_table)) == 0


async def test_another_group_sees_nothing_and_cancel_goes_through_a_confirmation(lab: Lab) -> None:
    services, http = lab
    request_id = (await _submit(http, GOOD)).headers["location"].removeprefix("/ui/requests/")
    await expand_once(services, "w")
    listed = (await http.get("/ui/requests")).text
    assert f'href="/ui/requests/{request_id}"' in listed
    assert "rnaseq_deseq2 1.0.0" in listed
    assert request_id in (await http.get("/ui/requests?state=submitted&group=lab-a")).text
    assert request_id not in (await http.get("/ui/requests?state=failed")).text
    assert (await http.get("/ui/requests?state=nonsense")).status_code == 400
    http.cookies.clear()
    await sign_in(http, "bob")
    assert request_id not in (await http.get("/ui/requests")).text
    for path in ("", "/live", "/cancel"):
        hidden = await http.get(f"/ui/requests/{request_id}{path}")
        assert hidden.status_code == 404
        assert "S0" not in hidden.text
    forged = await http.post(f"/ui/requests/{request_id}/cancel", data={"csrf": csrf_of(hidden.text)})
    assert forged.status_code == 404
    http.cookies.clear()
    await sign_in(http, "alice")
    confirm = await http.get(f"/ui/requests/{request_id}/cancel")
    assert "Yes, cancel it" in confirm.text
    assert (await http.post(f"/ui/requests/{request_id}/cancel", data={})).status_code == 403
    done = await http.post(f"/ui/requests/{request_id}/cancel", data={"csrf": csrf_of(confirm.text)})
    assert (done.status_code, done.headers["location"]) == (303, f"/ui/requests/{request_id}")
    page = (await http.get(done.headers["location"])).text
    assert "a cancel was asked" in page
    assert 'id="request-state" data-state="CANCELING"' in page
    states = (await http.get(f"/requests/{request_id}", headers=basic("alice"))).json()["aggregate"]["counts"]
    assert set(states) <= {"CANCELING", "CANCELED"}, states


async def test_the_sheet_form_takes_many_shared_parameters_within_a_bound(lab: Lab) -> None:
    services, http = lab
    extra = {f"p.unused_{i}": "" for i in range(30)}  # a pipeline with many parameters posts as many fields
    assert (await _submit(http, GOOD, **extra)).status_code == 303
    flood = {f"p.unused_{i}": "" for i in range(400)}
    assert (await _submit(http, GOOD, **flood)).status_code == 400
    assert await _count(services, requests_table) == 1


async def test_a_request_canceled_before_its_runs_exist_ends_and_stops_polling(lab: Lab) -> None:
    services, http = lab
    location = (await _submit(http, GOOD)).headers["location"]
    confirm = await http.get(f"{location}/cancel")
    assert (await http.post(f"{location}/cancel", data={"csrf": csrf_of(confirm.text)})).status_code == 303
    await expand_once(services, "w")
    page = (await http.get(location)).text
    assert 'id="request-state" data-state="CANCELED"' in page
    assert "No runs yet." in page
    assert "hx-trigger" not in page  # an ended request is not polled
    assert "Cancel this request" not in page


async def test_a_request_level_step_is_shown_while_it_waits(lab: Lab) -> None:
    services, http = lab
    location = (await _submit(http, GOOD)).headers["location"]
    assert "Request-level step" not in (await http.get(location)).text  # 1.0.0 has none
    request_id = location.removeprefix("/ui/requests/")
    async with services.db.write() as conn:  # as a pipeline with a request_step marks it (ADR 0019)
        query = sa.update(requests_table).where(requests_table.c.id == request_id).values(step_state="waiting")
        await conn.execute(query)
    await expand_once(services, "w")
    assert "waits for every sample to complete" in (await http.get(location)).text


async def _register(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await http.get("/ui/datasets")
    return await http.post("/ui/datasets/register", data={"csrf": csrf_of(page.text), **fields})


async def test_register_a_uri_as_post_datasets_does(lab: Lab) -> None:
    _, http = lab
    done = await _register(http, name="S1 reads", uri="s3://lab/reads/S1_R1.fastq.gz")
    assert (done.status_code, done.headers["location"]) == (303, "/ui/datasets?name=S1+reads")
    assert "s3://lab/reads/S1_R1.fastq.gz" in (await http.get(done.headers["location"])).text
    api = (await http.get("/datasets", headers=basic("alice"))).json()["datasets"]
    assert [(d["name"], d["uri"], d["research_group"]) for d in api] == [
        ("S1 reads", "s3://lab/reads/S1_R1.fastq.gz", "lab-a")
    ]
    # The API's SSRF policy and schemes: loopback and ftp:// are refused beside the URI field.
    for uri in ("https://127.0.0.1/reads.fq", "ftp://example.org/reads.fq", "file:///etc/passwd", "galaxy://dataset/X"):
        refused = await _register(http, name="bad", uri=uri)
        assert refused.status_code == 422, uri
        assert 'class="field invalid"' in refused.text
        assert f'value="{uri}"' in refused.text
    assert (await _register(http, name="x", uri="s3://lab/x.fq", research_group="lab-b")).status_code in (403, 404)
    assert len((await http.get("/datasets", headers=basic("alice"))).json()["datasets"]) == 1
    assert (await http.post("/ui/datasets/register", data={"name": "x", "uri": "s3://lab/x.fq"})).status_code == 403
    http.cookies.clear()
    await sign_in(http, "bob")
    assert "S1 reads" not in (await http.get("/ui/datasets")).text
