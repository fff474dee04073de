"""RequestRoute: the endpoint gets the Request itself, and everything around it stays an APIRoute's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from flowdeck.api.http_route import RequestRoute


class Answer(BaseModel):
    value: str


class Refused(Exception):
    pass


async def echo(request: Request) -> JSONResponse:
    if request.path_params["name"] == "refused":
        raise Refused
    return JSONResponse({"value": request.path_params["name"], "query": request.url.query})


def _app(*, included: bool) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": "refused"}, status_code=403)

    kwargs: dict[str, Any] = {"methods": ["GET"], "response_model": Answer, "operation_id": "Echo"}
    if included:
        router = APIRouter(prefix="/v1")
        router.add_api_route("/echo/{name}", echo, route_class_override=RequestRoute, **kwargs)
        app.include_router(router)
    else:
        app.router.add_api_route("/v1/echo/{name}", echo, route_class_override=RequestRoute, **kwargs)
    return app


@pytest.mark.parametrize("included", [False, True], ids=["app route", "included router"])
async def test_the_endpoint_gets_the_request_and_its_response_is_sent_as_is(included: bool) -> None:
    app = _app(included=included)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        ok = await client.get("/v1/echo/abc", params={"x": "1"})
        # The response model is documentation only: the endpoint's own body goes out unchanged.
        assert (ok.status_code, ok.json()) == (200, {"value": "abc", "query": "x=1"})
        refused = await client.get("/v1/echo/refused")
        assert (refused.status_code, refused.json()) == (403, {"error": "refused"})
        assert (await client.post("/v1/echo/abc")).status_code == 405


@pytest.mark.parametrize("included", [False, True], ids=["app route", "included router"])
def test_the_operation_is_documented_like_any_other(included: bool) -> None:
    operation = _app(included=included).openapi()["paths"]["/v1/echo/{name}"]["get"]
    assert operation["operationId"] == "Echo"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Answer"
    }


async def _two_parameters(request: Request, name: str) -> JSONResponse:
    raise AssertionError


def _not_a_coroutine(request: Request) -> JSONResponse:
    raise AssertionError


async def _dependency() -> None:
    pass


@pytest.mark.parametrize(
    ("endpoint", "extra"),
    [(_two_parameters, {}), (_not_a_coroutine, {}), (echo, {"dependencies": [Depends(_dependency)]})],
    ids=["declared parameter", "plain function", "dependencies"],
)
def test_what_it_would_silently_ignore_is_refused(endpoint: Any, extra: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="RequestRoute endpoint"):
        FastAPI().router.add_api_route("/x/{name}", endpoint, route_class_override=RequestRoute, **extra)


def test_the_handler_is_the_endpoint_itself() -> None:
    """No dependency solving in between: what makes the route cheaper than an APIRoute."""
    route = _app(included=False).routes[-1]
    assert isinstance(route, RequestRoute)
    assert route.get_route_handler() is echo
