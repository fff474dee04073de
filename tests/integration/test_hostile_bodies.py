"""Every hostile body at every door that takes one, on SQLite and PostgreSQL: never a 5xx, nothing
stored, and every list and view still answers afterwards.

The doors are taken from the app's own route table, so a new POST/PUT/PATCH route is covered
without editing this file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from flowdeck.api.app import create_app
from flowdeck.domain import json_values
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.integration.test_isolation import app_routes
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

LIMIT = 2 * 1024 * 1024
DEEP = 200_000
JSON = "application/json"
BOUNDARY = "h0stile"
WES_RUNS = "/ga4gh/wes/v1/runs"
# A body each door would take, with %s where a hostile value goes (raw JSON text).
TEMPLATES = {
    WES_RUNS: b'{"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello",'
    b' "workflow_params": {"x": %s}}',
    "/jobs": b'{"pipeline_name": "rnaseq_deseq2", "parameters": {"reference": %s}}',
    "/requests": b'{"pipeline_name": "rnaseq_deseq2", "parameters": {"reference": %s}, "samples": []}',
    "/datasets": b'{"name": %s}',
}
GENERIC = b'{"name": %s, "password": %s}'
VALUES = {
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus-infinity": b"-Infinity",
    "1e400": b"1e400",
    "-1e400": b"-1e400",
    "lone-surrogate": b'"\\ud800"',
    "lone-surrogate-key": b'{"\\udfff": 1}',
    "nul": b'"a\\u0000b"',
    "deep-array": b"[" * DEEP + b"]" * DEEP,
    "deep-object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
}
WHOLE = {
    "deep-array": b"[" * DEEP + b"]" * DEEP,
    "deep-object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "invalid-utf8": b'{"name": "\xff\xfe\xfa"}',
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"text"',
    "truncated": b'{"name": ',
}


def _doors() -> list[tuple[str, str]]:
    app = create_app(Settings(data_dir="/nonexistent-flowdeck-test"))
    return sorted({(m, p) for m, p in app_routes(app) if m in ("POST", "PUT", "PATCH")})


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


def _template(path: str) -> bytes:
    return TEMPLATES.get(path, GENERIC)


def _bodies(path: str) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """(label, body, headers) of every hostile body for this door."""
    template = _template(path)
    for name, value in VALUES.items():
        yield name, template.replace(b"%s", value), {"content-type": JSON}
    for name, body in WHOLE.items():
        yield name, body, {"content-type": JSON}
    yield "wrong-content-type", template.replace(b"%s", b'"x"'), {"content-type": "text/plain"}
    yield "no-content-type", template.replace(b"%s", b'"x"'), {}
    for name in ("1e400", "lone-surrogate", "nul", "deep-array"):
        field = "workflow_params" if path == WES_RUNS else "parameters"
        yield f"form-{name}", _form(field, b'{"x": ' + VALUES[name] + b"}"), {"content-type": _MULTIPART}
    yield "truncated-form", _form("parameters", b"{}")[:-20], {"content-type": _MULTIPART}


_MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _form(field: str, json_text: bytes) -> bytes:
    parts = {
        "workflow_type": b"DEMO",
        "workflow_type_version": b"1.0",
        "workflow_url": b"demo://hello",
        "pipeline_name": b"rnaseq_deseq2",
        field: json_text,
    }
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name="
    return (
        b"".join(f'{head}"{k}"\r\n\r\n'.encode() + v + b"\r\n" for k, v in parts.items())
        + f"--{BOUNDARY}--\r\n".encode()
    )


async def _twelve_megabytes() -> AsyncIterator[bytes]:
    for _ in range(12):
        yield b" " * (1024 * 1024)


@pytest.fixture
async def services(db_settings: Settings) -> AsyncIterator[AppContext]:
    ready = AppContext.create(db_settings.model_copy(update={"max_upload_bytes": LIMIT}))
    yield ready
    await ready.close()


async def _stored(api: httpx.AsyncClient) -> dict[str, Any]:
    """What every list shows (runs, jobs, requests, datasets, accounts)."""
    seen: dict[str, Any] = {}
    for path in (WES_RUNS, "/jobs", "/requests", "/datasets", "/users", "/groups", "/tokens"):
        response = await api.get(path)
        assert response.status_code < 500, (path, response.text)
        seen[path] = response.json() if response.status_code == 200 else response.status_code
    return seen


async def _send_all(client: httpx.AsyncClient, method: str, path: str, auth: dict[str, str]) -> list[Any]:
    """Every hostile body to one door: what answered 5xx or 2xx."""
    url = _concrete(path)
    failures = []
    for label, body, headers in _bodies(path):
        response = await client.request(method, url, content=body, headers={**headers, **auth})
        if response.status_code >= 500 or 200 <= response.status_code < 300:
            failures.append((label, response.status_code, response.text[:200]))
    chunked = await client.request(method, url, content=_twelve_megabytes(), headers={"content-type": JSON, **auth})
    assert "content-length" not in chunked.request.headers
    if chunked.status_code >= 500 or 200 <= chunked.status_code < 300:
        failures.append(("12MB-chunked", chunked.status_code, chunked.text[:200]))
    return failures


# Server-sent event streams never end, and httpx's in-process transport returns an answer only
# once it has ended: GET /events is read by tests/integration/test_events_stream.py over a socket.
STREAMS = {"/events"}


async def _read_everything(client: httpx.AsyncClient, app: Any, auth: dict[str, str]) -> None:
    for get_path in sorted({p for m, p in app_routes(app) if m == "GET"} - STREAMS):
        response = await client.get(_concrete(get_path), headers=auth)
        assert response.status_code < 500, (get_path, response.text)


@pytest.mark.parametrize(("method", "path"), _doors(), ids=[f"{m} {p}" for m, p in _doors()])
async def test_hostile_bodies_are_refused_and_nothing_is_stored(api: httpx.AsyncClient, method: str, path: str) -> None:
    before = await _stored(api)
    assert await _send_all(api, method, path, {}) == []
    assert await _stored(api) == before
    await _read_everything(api, api._transport.app, {})  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "path"), _doors(), ids=[f"{m} {p}" for m, p in _doors()])
async def test_hostile_bodies_from_a_signed_in_admin(db_settings: Settings, method: str, path: str) -> None:
    """In auth mode basic, as a service admin: the accounts doors read their bodies too."""
    settings = basic_settings(db_settings).model_copy(update={"max_upload_bytes": LIMIT})
    async with basic_app(settings) as (app, services, client):
        await add_user(services, "root", admin=True)
        auth = basic("root")
        before = await _stored_as(client, auth)
        assert await _send_all(client, method, path, auth) == []
        assert await _stored_as(client, auth) == before
        await _read_everything(client, app, auth)


async def _stored_as(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for path in (WES_RUNS, "/jobs", "/requests", "/datasets", "/users", "/groups", "/tokens"):
        response = await client.get(path, headers=auth)
        assert response.status_code < 500, (path, response.text)
        seen[path] = response.json()
    return seen


@pytest.mark.parametrize("path", ["/jobs", "/requests", "/datasets", WES_RUNS])
async def test_a_chunked_body_past_the_limit_is_413_naming_it(api: httpx.AsyncClient, path: str) -> None:
    response = await api.post(path, content=_twelve_megabytes(), headers={"content-type": JSON})
    assert response.status_code == (400 if path == WES_RUNS else 413), response.text
    assert str(LIMIT) in response.text


async def test_a_row_stored_before_the_rule_is_served_with_placeholders(
    api: httpx.AsyncClient, services: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A run whose stored JSON holds 1e400 (and, on SQLite, lone surrogates: PostgreSQL's jsonb
    and MariaDB's JSON check refuse them) is shown by every view and list with a placeholder and a logged warning."""
    fields = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}
    run_id = (await api.post(WES_RUNS, data=fields)).json()["run_id"]
    postgres = services.db.is_postgres
    # MariaDB's JSON check (JSON_VALID) refuses lone surrogates too; it keeps 1e400 as written.
    strict = postgres or services.db.is_mysql
    params = '{"big": 1e400, "small": -1e400}' if strict else '{"big": 1e400, "s": "a\\ud800", "\\udfff": 1}'
    tags = '{"k": "v"}' if strict else '{"k": "\\ud800"}'
    cast = "CAST(:p AS jsonb)" if postgres else ":p"
    async with services.db.write() as conn:
        await conn.execute(
            text(f"UPDATE runs SET workflow_params = {cast}, tags = {cast.replace(':p', ':t')} WHERE id = :id"),
            {"p": params, "t": tags, "id": run_id},
        )
    with caplog.at_level(logging.WARNING, logger="flowdeck.api.readable_json"):
        run_log = await api.get(f"{WES_RUNS}/{run_id}")
        job = await api.get(f"/jobs/{run_id}")
        for path in (WES_RUNS, "/jobs"):
            listed = await api.get(path)
            assert listed.status_code == 200, listed.text
            assert run_id in listed.text
    assert run_log.status_code == 200, run_log.text
    assert job.status_code == 200, job.text
    # PostgreSQL's jsonb keeps 1e400 as the exact integer it is: readable as it stands.
    big = 10**400 if postgres else json_values.UNREADABLE_NUMBER
    assert run_log.json()["request"]["workflow_params"]["big"] == big
    assert job.json()["parameters"]["big"] == big
    if not strict:
        assert job.json()["parameters"]["s"] == "a\\ud800"
        assert run_log.json()["request"]["tags"] == {"k": "\\ud800"}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 4, warnings  # the run log, the job, and both lists
        assert all("/big" in w or "/tags/k" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("path", "query"),
    [("/requests", {"state": "zzz"}), ("/jobs", {"state": "zzz"}), (WES_RUNS, {"state": "zzz"})],
)
async def test_unknown_filter_values_are_refused(api: httpx.AsyncClient, path: str, query: dict[str, str]) -> None:
    response = await api.get(path, params=query)
    assert response.status_code == (400 if path == WES_RUNS else 422), response.text
    assert "zzz" in response.text or path == WES_RUNS  # WES lists the states it knows


@pytest.mark.parametrize("path", ["/users", "/groups", "/tokens"])
async def test_an_accounts_body_past_the_limit_is_413(db_settings: Settings, path: str) -> None:
    settings = basic_settings(db_settings).model_copy(update={"max_upload_bytes": LIMIT})
    async with basic_app(settings) as (app, services, client):
        await add_user(services, "root", admin=True)
        response = await client.post(path, content=_twelve_megabytes(), headers={"content-type": JSON, **basic("root")})
        assert response.status_code == 413, response.text
        assert str(LIMIT) in response.text
        assert "username" in str(app.openapi()["paths"]["/users"]["post"]["requestBody"])


async def test_a_chunked_dataset_upload_past_the_limit_is_413(api: httpx.AsyncClient) -> None:
    """Refused as soon as it outgrows the limit, not once spooled whole."""
    sent = []

    async def upload() -> AsyncIterator[bytes]:
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'.encode()
        for _ in range(12):
            sent.append(1)
            yield b"x" * (1024 * 1024)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    response = await api.post("/datasets", content=upload(), headers={"content-type": _MULTIPART})
    assert response.status_code == 413, response.text
    assert str(LIMIT) in response.text
    assert (await api.get("/datasets")).json()["datasets"] == []
    assert len(sent) <= LIMIT // (1024 * 1024) + 1


HOSTILE_IDS = ["%00", "a%00b", "x" * 5000, "%ED%A0%80", "%FF", "..%2F..%2Fetc", "%F0%9F%98%80", "-1", "1e400"]


@pytest.mark.parametrize("hostile_id", HOSTILE_IDS)
async def test_hostile_ids_in_every_path_are_4xx(api: httpx.AsyncClient, hostile_id: str) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a crash is a 500 here
    failures = []
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for method, path in sorted({(m, p) for m, p in app_routes(app) if "{" in p and m != "?"}):
            url = re.sub(r"\{[^}]+\}", hostile_id, path)
            response = await client.request(method, url)
            if response.status_code >= 500:
                failures.append((method, path, response.status_code))
    assert failures == []
