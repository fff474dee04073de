"""Exceptions to HTTP, in one place.

WES routes answer with the WES ``ErrorResponse`` (``msg``, ``status_code``) as
``application/json``; every other route answers with RFC 9457 problem details.
The WES contract documents no 413 or 422, so on WES routes those become 400.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.api.access_log import LOGGED_KEY
from flowdeck.api.wes_views import WES
from flowdeck.errors import FlowdeckError, Unauthenticated, ValidationFailed

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def _is_wes(request: Request) -> bool:
    return request.url.path.startswith(WES)


def error_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error body a route of this kind owes its client."""
    if _is_wes(request):
        wes_status = 400 if status in (413, 422) else status
        return JSONResponse({"msg": detail, "status_code": wes_status}, status_code=wes_status, headers=headers)
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def _flowdeck_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlowdeckError)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationFailed):
        extra["errors"] = [p.as_dict() for p in exc.problems]
    extra.update({k: v for k, v in exc.extra.items() if k != "headers"})
    headers = exc.extra.get("headers")
    if isinstance(exc, Unauthenticated) and headers is None:
        headers = request.app.state.challenge_headers or None
    if exc.status_code >= 500:
        log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc.detail)
    return error_response(request, exc.status_code, exc.title, exc.detail, extra, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        pointer = "/" + "/".join(location[1:]) if len(location) > 1 else "/"
        problems.append(
            {
                "pointer": pointer,
                "message": str(error.get("msg")),
                "rule": str(error.get("type")),
                "in": location[0] if location else "body",
            }
        )
    detail = "; ".join(f"{p['in']} {p['pointer']}: {p['message']}" for p in problems) or "invalid request"
    status = 400 if _is_wes(request) else 422
    return error_response(request, status, "Validation failed", detail, {"errors": problems})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        request, exc.status_code, str(exc.detail), str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # SQLSTATE class 22 ("data exception"): a value the database cannot hold, such as a NUL in
    # an id PostgreSQL is asked to compare. Bad input, never a 500; logged so a bug shows.
    assert isinstance(exc, DataError)
    log.warning("the database refused a value on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
    detail = "a value in this request cannot be held by the database (for example a NUL character)"
    return error_response(request, 400, "Invalid input", detail)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    request.scope[LOGGED_KEY] = True  # the server would log the same traceback again (api/access_log.py)
    return error_response(request, 500, "Internal error", "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(FlowdeckError, _flowdeck_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
