"""The datasets page (docs/ui.md): upload through the browser form (CSRF-checked, SHA-256 and
size recorded as by ``POST /datasets``), the list with its filter and download links, and another
research group that sees none of it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from flowdeck.api.ui.datasets import upload_origin
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import S3Storage
from flowdeck.settings import Settings
from tests.integration.test_ui import csrf_of, sign_in
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

Lab = tuple[AppContext, httpx.AsyncClient]
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


async def _ask_upload_url(http: httpx.AsyncClient, csrf: str, **fields: str) -> httpx.Response:
    form = {"csrf": csrf, "filename": "reads_R2.fastq", "size": str(len(CONTENT)), **fields}
    return await http.post("/ui/datasets/upload-url", data=form)


async def test_the_page_puts_the_file_at_a_pre_signed_url_then_lists_it(lab: Lab) -> None:
    """What static/upload.js does: ask for the URL, PUT the bytes, go to the dataset."""
    _, http = lab
    await sign_in(http, "alice")
    page = await http.get("/ui/datasets")
    assert "connect-src 'self' http://testserver;" in page.headers["content-security-policy"]
    assert '<script src="/ui/static/upload.js" defer></script>' in page.text
    asked = await _ask_upload_url(http, csrf_of(page.text), name="S2 reads")
    assert asked.status_code == 200, asked.text
    target = asked.json()
    assert target["method"] == "PUT"
    assert target["upload_url"].startswith("http://testserver/storage/")
    assert "upload pending" in (await http.get("/ui/datasets")).text
    put = await http.put(target["upload_url"].replace("http://testserver", ""), content=CONTENT)
    assert put.status_code == 204
    done = await http.get(target["done"])
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/datasets?name=S2+reads"
    listed = (await http.get(done.headers["location"])).text
    assert f"sha256:{hashlib.sha256(CONTENT).hexdigest()}" in listed
    assert "upload pending" not in listed
    api = (await http.get(f"/datasets/{target['id']}", headers=basic("alice"))).json()
    assert (api["research_group"], api["size"], api["pending_upload"]) == ("lab-a", len(CONTENT), False)
    assert (await http.get(api["download_url"].replace("http://testserver", ""))).content == CONTENT
    assert (await http.get("/ui/static/upload.js")).headers["content-type"].startswith("text/javascript")


async def test_an_upload_url_needs_the_csrf_token_a_file_and_room_and_stays_in_its_group(lab: Lab) -> None:
    services, http = lab
    await sign_in(http, "alice")
    csrf = csrf_of((await http.get("/ui/datasets")).text)
    assert (await _ask_upload_url(http, "forged")).status_code == 403
    assert (await _ask_upload_url(http, csrf, filename="")).status_code in (400, 422)
    too_big = await _ask_upload_url(http, csrf, size=str(services.settings.max_upload_bytes + 1))
    assert too_big.status_code == 413
    assert (await _ask_upload_url(http, csrf, size="-1")).status_code == 400
    assert (await http.get("/datasets", headers=basic("alice"))).json()["datasets"] == []
    mine = (await _ask_upload_url(http, csrf)).json()
    http.cookies.clear()
    await sign_in(http, "bob")
    assert (await http.get(mine["done"])).status_code == 404
    assert "reads_R2.fastq" not in (await http.get("/ui/datasets")).text


def test_with_s3_the_page_may_connect_to_the_buckets_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    aws = Settings(storage="s3", s3_bucket="lab-data", s3_region="eu-west-1")
    minio = aws.model_copy(update={"s3_endpoint_url": "https://minio.example.org:9000"})
    assert upload_origin(S3Storage(minio), "http://flowdeck") == "https://minio.example.org:9000"
    found = upload_origin(S3Storage(aws), "http://flowdeck")
    assert found.startswith("https://")
    assert found.endswith(".amazonaws.com")
    assert "lab-data" in found
