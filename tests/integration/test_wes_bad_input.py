"""Issue 2's bad input, on SQLite and PostgreSQL: each gets a clear 4xx in the WES error shape
and leaves every stored run as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from flowdeck.api.app import create_app
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings

WES = "/ga4gh/wes/v1"
LIMIT = 4096
BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FIELDS = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}


def _form(*parts: bytes, fields: dict[str, str] = FIELDS, close: bool = True) -> bytes:
    """A multipart body written by hand, so that it can say what no client library would."""
    body = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    return body + b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def _file(filename: bytes, content: bytes = b"x") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="workflow_attachment"; filename="'.encode()
    return head + filename + b'"\r\n\r\n' + content + b"\r\n"


@pytest.fixture
async def api(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    services = AppContext.create(db_settings.model_copy(update={"max_upload_bytes": LIMIT}))
    app = create_app(services.settings, services)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
    finally:
        await services.close()


async def _stored(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every stored run as GetRunLog shows it."""
    runs = (await api.get(f"{WES}/runs", params={"page_size": 100})).json()["runs"]
    return [(await api.get(f"{WES}/runs/{run['run_id']}")).json() for run in runs]


async def _refused(api: httpx.AsyncClient, response: httpx.Response, status: int, before: list[Any]) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"msg", "status_code"}
    assert body["status_code"] == status
    assert await _stored(api) == before
    return str(body["msg"])


async def _one_run(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.post(f"{WES}/runs", content=_form(_file(b"notes.txt")), headers={"content-type": MULTIPART})
    assert response.status_code == 200, response.text
    return await _stored(api)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\x00\xff garbage \r\n\r\n--", MULTIPART, "malformed form body"),
        (_form(_file(b"a.txt")), "multipart/form-data", "boundary"),
        (_form(_file(b"a.txt")), "multipart/form-data; boundary=other", "closing boundary"),
        (_form(_file(b"a.txt"), close=False), MULTIPART, "closing boundary"),
        (_form(_file(b"a.txt")).replace(b"\r\n", b"\n"), MULTIPART, "closing boundary"),
        (_form(b"--b0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n"), MULTIPART, 'needs a "name"'),
        (_form(fields={**FIELDS, "workflow_params": "@"}).replace(b"@", b"\xff"), MULTIPART, "valid"),
        (b"workflow_type=DEMO&workflow_type_version=1.0", "application/x-www-form-urlencoded", "workflow_url"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b"hello", "text/plain", "takes multipart/form-data"),
    ],
    ids=[
        "garbage",
        "no boundary",
        "wrong boundary",
        "never closed",
        "bare LF lines",
        "part without a name",
        "invalid UTF-8 text",
        "urlencoded without workflow_url",
        "invalid JSON body",
        "JSON array body",
        "other content type",
    ],
)
async def test_malformed_bodies(api: httpx.AsyncClient, body: bytes, content_type: str, message: str) -> None:
    before = await _one_run(api)
    response = await api.post(f"{WES}/runs", content=body, headers={"content-type": content_type})
    assert message in await _refused(api, response, 400, before)


@pytest.mark.parametrize(
    "filename",
    [b"../escape.cwl", b"a/../../b", b"/etc/passwd", b"a\x00b", b"tab\there", b"C:/x/../../y", b"", b"a" * 10_000],
    ids=["parent", "nested parent", "absolute", "NUL", "control character", "drive", "empty", "10,000 characters"],
)
async def test_attachment_names(api: httpx.AsyncClient, filename: bytes) -> None:
    before = await _one_run(api)
    response = await api.post(f"{WES}/runs", content=_form(_file(filename)), headers={"content-type": MULTIPART})
    await _refused(api, response, 400, before)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**FIELDS, "workflow_params": "{not json"}, "workflow_params is not valid JSON"),
        ({**FIELDS, "tags": "[1]"}, "tags must be a JSON object"),
        ({**FIELDS, "workflow_type": "COBOL"}, "unsupported workflow_type"),
        ({**FIELDS, "workflow_type_version": "9.9"}, "is not supported"),
    ],
)
async def test_bad_fields(api: httpx.AsyncClient, fields: dict[str, str], message: str) -> None:
    before = await _one_run(api)
    response = await api.post(f"{WES}/runs", content=_form(fields=fields), headers={"content-type": MULTIPART})
    assert message in await _refused(api, response, 400, before)


async def test_oversize_uploads(api: httpx.AsyncClient) -> None:
    """400, not 413: the WES contract documents no 413 (flowdeck.api.errors)."""
    before = await _one_run(api)
    big = _form(_file(b"big.bin", b"x" * LIMIT))
    said = await api.post(f"{WES}/runs", content=big, headers={"content-type": MULTIPART})
    assert "exceeds" in await _refused(api, said, 400, before)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while it arrives
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = await api.post(f"{WES}/runs", content=chunks(), headers={"content-type": MULTIPART})
    assert "content-length" not in streamed.request.headers
    assert "exceeds" in await _refused(api, streamed, 400, before)
    as_json = await api.post(f"{WES}/runs", json={**FIELDS, "workflow_params": {"x": "y" * LIMIT}})
    assert "exceeds" in await _refused(api, as_json, 400, before)


@pytest.mark.parametrize(
    "run_id",
    ["..", "%2e%2e", "a/b", "x" * 10_000, "\x00", "' OR 1=1 --", "😀", " ", "-1", "9" * 40],
    ids=["dots", "encoded dots", "slash", "long", "NUL", "SQL", "emoji", "space", "negative", "big number"],
)
async def test_run_ids_of_any_shape_are_not_found(api: httpx.AsyncClient, run_id: str) -> None:
    before = await _one_run(api)
    path = f"{WES}/runs/{quote(run_id, safe='')}"
    for method, suffix in (("GET", ""), ("GET", "/status"), ("GET", "/tasks"), ("POST", "/cancel")):
        response = await api.request(method, path + suffix)
        assert response.status_code == 404, (method, suffix, response.text)
        assert await _refused(api, response, 404, before)
