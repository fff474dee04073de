"""GetRunStatus, the route clients poll, is the app's own first route and reads ``run_id`` itself,
and the documentation routes come after the API (routes are matched in order). Documented,
answered and guarded as before: these tests hold it to what an ordinary declaration gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from flowdeck.api import wes_schemas as schemas
from flowdeck.api.app import create_app
from flowdeck.api.http_route import RequestRoute
from flowdeck.api.routes import wes
from flowdeck.db.migrate import upgrade
from tests.conftest import make_settings
from tests.support.basic_app import basic_app, basic_settings

WES = "/ga4gh/wes/v1"
STATUS = WES + "/runs/{run_id}/status"
DOCS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def _declared_operation() -> dict[str, Any]:
    """GetRunStatus as FastAPI documents it with ``run_id: str`` declared, as it was before."""
    reference = FastAPI()

    @reference.get(
        STATUS, response_model=schemas.RunStatus, responses=wes.ERRORS, operation_id="GetRunStatus", tags=["GA4GH WES"]
    )
    async def get_run_status(run_id: str) -> JSONResponse:
        raise AssertionError("documentation only")

    operation: dict[str, Any] = reference.openapi()["paths"][STATUS]["get"]
    return operation


def test_the_status_operation_is_documented_as_with_a_declared_path_parameter(tmp_path: Path) -> None:
    document = create_app(make_settings(tmp_path)).openapi()
    operation = document["paths"][STATUS]["get"]
    assert operation == _declared_operation()
    assert [p["name"] for p in operation["parameters"]] == ["run_id"]
    assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "HTTPValidationError" in document["components"]["schemas"]


def test_the_status_and_submit_routes_come_first_and_the_docs_routes_last(tmp_path: Path) -> None:
    routes = create_app(make_settings(tmp_path)).routes
    first = routes[0]
    assert isinstance(first, APIRoute)  # the app's own route, not one inside an included router
    assert (first.path, first.methods, first.endpoint) == (STATUS, {"GET"}, wes.get_run_status)
    assert isinstance(first, RequestRoute)  # the Request goes straight to the endpoint
    second = routes[1]
    assert isinstance(second, RequestRoute)
    assert (second.path, second.methods, second.endpoint) == (WES + "/runs", {"POST"}, wes.run_workflow)
    assert [getattr(route, "path", None) for route in routes[-len(DOCS) :]] == list(DOCS)


async def test_the_docs_are_served_and_left_out_of_the_schema(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        schema = await client.get("/openapi.json")
        assert schema.status_code == 200
        assert schema.json() == app.openapi()
        for path, needle in (("/docs", "/openapi.json"), ("/redoc", "/openapi.json"), ("/docs/oauth2-redirect", "")):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            assert needle in page.text
        assert "/docs/oauth2-redirect" in (await client.get("/docs")).text
    assert not set(DOCS) & set(app.openapi()["paths"])


async def test_status_answers_as_before(api: httpx.AsyncClient) -> None:
    form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}
    run_id = (await api.post(f"{WES}/runs", data=form)).json()["run_id"]
    answer = await api.get(f"{WES}/runs/{run_id}/status")
    assert (answer.status_code, answer.json()) == (200, {"run_id": run_id, "state": "QUEUED"})

    missing = await api.get(f"{WES}/runs/no-such-run/status")
    assert (missing.status_code, missing.json()) == (404, {"msg": "run no-such-run not found", "status_code": 404})

    nul = await api.get(f"{WES}/runs/a%00b/status")  # no run has one; PostgreSQL refuses it in a query
    assert (nul.status_code, nul.json()) == (404, {"msg": "run a\x00b not found", "status_code": 404})

    wrong_method = await api.post(f"{WES}/runs/{run_id}/status")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET")
    assert wrong_method.json() == {"msg": "Method Not Allowed", "status_code": 405}


async def test_status_needs_credentials_when_auth_is_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings)
    async with basic_app(basic_settings(settings)) as (_, _services, client):
        answer = await client.get(f"{WES}/runs/no-such-run/status")
    assert answer.status_code == 401
    assert answer.json()["status_code"] == 401
    assert answer.headers["www-authenticate"].startswith("Basic")


async def test_seed_003_names_for_the_health_check_and_the_api_pages(api: Any) -> None:
    health = await api.get("/healthcheck")
    assert health.status_code == 200
    assert health.json().keys() == (await api.get("/healthz")).json().keys()
    swagger = await api.get("/ga4gh/wes/v1/docs")
    assert swagger.status_code == 200
    assert "swagger-ui" in swagger.text
    assert "/openapi.json" in swagger.text
    redoc = await api.get("/ga4gh/wes/v1/redoc")
    assert redoc.status_code == 200
    assert "redoc" in redoc.text
    assert "/openapi.json" in redoc.text
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert not {"/healthcheck", "/ga4gh/wes/v1/docs", "/ga4gh/wes/v1/redoc"} & set(paths)
