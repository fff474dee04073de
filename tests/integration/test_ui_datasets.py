"""The datasets page (docs/ui.md): upload through the browser form (CSRF-checked, SHA-256 and
size recorded as by ``POST /datasets``), the list with its filter and download links, and another
research group that sees none of it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from flowdeck.services.core.context import Services
from flowdeck.settings import Settings
from tests.integration.test_ui import csrf_of, sign_in
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

Lab = tuple[Services, httpx.AsyncClient]
CONTENT = b"@r1\nACGT\n+\nIIII\n"


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[Lab]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        yield services, http


async def _upload(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await http.get("/ui/datasets")
    files = {"file": ("reads_R1.fastq", CONTENT, "text/plain")}
    return await http.post("/ui/datasets", data={"csrf": csrf_of(page.text), **fields}, files=files)


async def test_upload_then_list_and_download(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "alice")
    done = await _upload(http, name="S1 reads")
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/datasets?name=S1+reads"
    listed = (await http.get(done.headers["location"])).text
    assert "S1 reads" in listed
    assert f"sha256:{hashlib.sha256(CONTENT).hexdigest()}" in listed
    link = re.search(r'<a href="([^"]+)" download>S1 reads</a>', listed)
    assert link, listed
    got = await http.get(link.group(1).replace("http://testserver", ""))
    assert got.content == CONTENT
    api = (await http.get("/datasets", headers=basic("alice"))).json()["datasets"]
    assert [(d["name"], d["research_group"], d["size"]) for d in api] == [("S1 reads", "lab-a", len(CONTENT))]
    assert "S1 reads" not in (await http.get("/ui/datasets?name=other")).text


async def test_another_group_sees_nothing_and_a_forged_upload_stores_nothing(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "alice")
    assert (await _upload(http)).status_code == 303
    http.cookies.clear()
    await sign_in(http, "bob")
    assert "reads_R1.fastq" not in (await http.get("/ui/datasets")).text
    files = {"file": ("forged.txt", b"x", "text/plain")}
    forged = await http.post("/ui/datasets", data={"csrf": "not-the-token"}, files=files)
    assert forged.status_code == 403
    no_file = await http.post("/ui/datasets", data={"csrf": csrf_of((await http.get("/ui/datasets")).text)})
    assert no_file.status_code in (400, 422)
    assert (await http.get("/datasets", headers=basic("bob"))).json()["datasets"] == []
