"""Datasets over HTTP: register, upload, pre-signed upload, list, read, delete, visibility."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowdeck.domain.filters import DatasetFilter
from flowdeck.domain.principal import Principal
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.datasets.service import NewDataset


async def test_register_by_uri_and_read_back(api: httpx.AsyncClient) -> None:
    body = {"name": "r1", "research_group": "lab", "uri": "s3://bucket/r1.fastq.gz", "checksum": "md5:x", "size": 10}
    created = await api.post("/datasets", json=body)
    assert created.status_code == 201, created.text
    got = (await api.get(f"/datasets/{created.json()['id']}")).json()
    assert got["uri"] == body["uri"]
    assert got["size"] == 10
    assert got["download_url"] is None
    galaxy = await api.post("/datasets", json={"name": "g", "uri": "galaxy://dataset/0123456789abcdef"})
    assert galaxy.json()["galaxy_dataset_id"] == "0123456789abcdef"
    assert galaxy.json()["uri"] is None


@pytest.mark.parametrize("uri", ["ftp://x/y", "gopher://a", "file:///etc/passwd", "https://"])
async def test_unsupported_uris_are_422_listing_schemes(api: httpx.AsyncClient, uri: str) -> None:
    response = await api.post("/datasets", json={"name": "bad", "uri": uri})
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/uri"
    if not uri.startswith("file"):
        assert "s3://" in response.json()["detail"]
        assert "galaxy://dataset/" in response.json()["detail"]


async def test_file_uris_only_inside_roots(services: AppContext, tmp_path: Path) -> None:
    services.settings = services.settings.model_copy(update={"dataset_file_roots": [tmp_path / "in"]})
    who = Principal("local", unrestricted=True)
    row = await dataset_service.register(services, who, NewDataset(name="ok", uri=f"file://{tmp_path}/in/a.txt"))
    assert row.uri is not None
    assert row.uri.endswith("/in/a.txt")
    with pytest.raises(Exception, match="must lie under"):
        await dataset_service.register(services, who, NewDataset(name="no", uri=f"file://{tmp_path}/in/../out.txt"))


async def test_multipart_upload_then_download(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/datasets",
        data={"name": "up", "research_group": "lab"},
        files={"file": ("reads.tsv", b"b\t2\na\t1\n", "text/tab-separated-values")},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["stored"]
    assert body["size"] == 8
    assert body["checksum"].startswith("sha256:")
    url = body["download_url"].removeprefix("http://testserver")
    downloaded = await api.get(url)
    assert downloaded.status_code == 200
    assert downloaded.content == b"b\t2\na\t1\n"
    assert (await api.get(url[:-3] + "xyz")).status_code == 404  # a tampered token


async def test_presigned_upload_flow(api: httpx.AsyncClient) -> None:
    created = (await api.post("/datasets", json={"name": "later.txt", "upload": True})).json()
    assert created["pending_upload"]
    assert created["download_url"] is None
    put = created["upload_url"].removeprefix("http://testserver")
    assert (await api.get(put)).status_code == 404  # an upload token does not download
    assert (await api.put(put, content=b"hello")).status_code == 204
    done = (await api.get(f"/datasets/{created['id']}")).json()
    assert not done["pending_upload"]
    assert done["size"] == 5
    assert (await api.get(done["download_url"].removeprefix("http://testserver"))).content == b"hello"


async def test_list_paging_delete_and_visibility(api: httpx.AsyncClient, services: AppContext) -> None:
    ids = [
        (await api.post("/datasets", json={"name": f"d{i}", "research_group": "lab", "uri": "https://h/x"})).json()[
            "id"
        ]
        for i in range(3)
    ]
    first = (await api.get("/datasets", params={"page_size": 2})).json()
    second = (await api.get("/datasets", params={"page_size": 2, "page_token": first["next_page_token"]})).json()
    assert [d["id"] for d in first["datasets"] + second["datasets"]] == ids[::-1]
    assert (await api.delete(f"/datasets/{ids[0]}")).status_code == 204
    assert (await api.get(f"/datasets/{ids[0]}")).status_code == 404
    outsider = Principal("eve", groups={"other": "member"})
    with pytest.raises(Exception, match="not found"):
        await dataset_service.get_visible(services, ids[1], outsider)
    rows, _ = await dataset_service.list_page(services, outsider, DatasetFilter(), None, None)
    assert rows == []
