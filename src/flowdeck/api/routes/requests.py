"""Requests (seed 001): one pipeline mapped over datasets, samples or a sample sheet.

``POST /requests`` answers 202 with the request id at once; the worker creates
the runs. The body is JSON, or multipart with a ``samplesheet`` file (CSV/TSV)
and text fields (``parameters``, ``samples``, ``dataset_ids`` as JSON text).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from flowdeck.api.deps import PrincipalDep, ServicesDep
from flowdeck.api.http_body import body_within, json_within, refuse_declared_length, strict_json, validated
from flowdeck.api.idempotency import idempotent
from flowdeck.api.multipart import FilePart, MalformedForm, parse_form
from flowdeck.api.readable_json import ReadableJSONResponse
from flowdeck.domain.filters import RequestFilter
from flowdeck.errors import InvalidInput, Problem, ValidationFailed
from flowdeck.services.core import idempotency
from flowdeck.services.requests import service as request_service
from flowdeck.services.requests.items import RequestInput
from flowdeck.services.runs import ro_crate
from flowdeck.services.runs.state_machine import REQUEST_STATES

router = APIRouter(prefix="/requests", tags=["requests"])
FORM_TEXTS = (
    "pipeline_name",
    "pipeline_version",
    "research_group",
    "description",
    "strict",
    "parameters",
    "dataset_ids",
    "samples",
    "samplesheet",
    "samplesheet_type",
    "send_email_notification",
    "use_cached",
)
JSON_TEXTS = ("parameters", "dataset_ids", "samples")


class RequestBody(BaseModel):
    """``POST /requests``: shared ``parameters`` and exactly one of dataset_ids, samples, samplesheet."""

    model_config = ConfigDict(extra="forbid")

    pipeline_name: str = Field(min_length=1)
    pipeline_version: str | None = None
    research_group: str | None = None
    description: str | None = None
    strict: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    dataset_ids: list[str] | None = None
    samples: list[Any] | None = None
    samplesheet: str | None = Field(None, description="Sample sheet text (CSV or TSV).")
    samplesheet_type: str | None = Field(None, description="csv or tsv (default: guessed).")
    send_email_notification: bool = Field(
        False, description="Seed 001: mail the owner once the request as a whole has ended (docs/webhooks.md)."
    )
    use_cached: bool = Field(
        False,
        description="Seed 001's use_cached_jobs for whole runs: each run may be answered from the call cache "
        "(docs/jobs.md); a sample's own use_cached overrides it.",
    )


@router.post(
    "",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": RequestBody.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            **{name: {"type": "string"} for name in FORM_TEXTS if name != "samplesheet"},
                            "samplesheet": {"type": "string", "format": "binary"},
                        },
                    }
                },
            }
        }
    },
)
async def create_request(request: Request, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Validate the request and answer at once with its id (state ``new``); the worker creates its runs."""
    given, body_hash = await _read(request, services.settings.max_upload_bytes)

    async def create() -> JSONResponse:
        return JSONResponse(await request_service.accept(services, principal, given), status_code=202)

    return await idempotent(request, services, principal, lambda: body_hash, create)


@router.get("")
async def list_requests(
    services: ServicesDep,
    principal: PrincipalDep,
    page_size: Annotated[int | None, Query()] = None,
    page_token: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(description="new, submitted or failed")] = None,
    pipeline_name: Annotated[str | None, Query()] = None,
    research_group: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """Requests the caller may see, newest first, in keyset pages."""
    if state is not None and state not in REQUEST_STATES:
        words = ", ".join(REQUEST_STATES)
        raise ValidationFailed(
            f"unknown request state {state!r}; use {words}", [Problem("/state", f"unknown state {state!r}", "enum")]
        )
    flt = RequestFilter(state=state, pipeline_name=pipeline_name, research_group=research_group)
    rows, token = await request_service.list_page(services, principal, flt, page_size, page_token or None)
    return ReadableJSONResponse({"requests": [request_service.view(r) for r in rows], "next_page_token": token})


@router.get("/{request_id}")
async def get_request(
    request_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    page_size: Annotated[int | None, Query(description="Runs per page.")] = None,
    page_token: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """The request, its aggregate state, and a page of its runs in request order."""
    return ReadableJSONResponse(
        await request_service.detail(services, request_id, principal, page_size, page_token or None)
    )


@router.get("/{request_id}/state")
async def get_request_state(request_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """``new``, ``submitted`` or ``failed``, with a message."""
    return JSONResponse(await request_service.state_of(services, request_id, principal))


@router.post("/{request_id}/cancel")
async def cancel_request(request_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Stop expansion and cancel every run of the request (202). Idempotent. A request whose runs
    have all ended is left as it is: 200, with a ``detail`` saying there was nothing to cancel."""
    outcome = await request_service.cancel(services, request_id, principal)
    body = {**request_service.view(outcome.row), "detail": outcome.detail}
    return JSONResponse(body, status_code=200 if outcome.ended else 202)


@router.get("/{request_id}/ro-crate", response_class=FileResponse)
async def request_ro_crate(request_id: str, services: ServicesDep, principal: PrincipalDep) -> FileResponse:
    """The request and all its runs as one Workflow Run RO-Crate, zipped (docs/ro-crate.md); 409
    until every run has ended."""
    path = await ro_crate.export_request(services, request_id, principal)
    filename = ro_crate.crate_filename("request", request_id)
    return FileResponse(path, media_type="application/zip", filename=filename, background=BackgroundTask(path.unlink))


@router.get("/{request_id}/events")
async def request_events(request_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """The request's state changes and cancels, oldest first."""
    return JSONResponse({"events": await request_service.events(services, request_id, principal)})


async def _read(request: Request, max_bytes: int) -> tuple[RequestInput, str]:
    """The request input and the hash of the body (for Idempotency-Key)."""
    refuse_declared_length(request, max_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await json_within(request, max_bytes)
        return _input(raw), idempotency.fingerprint(raw)
    if content_type == "multipart/form-data":
        return await _from_form(request, max_bytes)
    raise InvalidInput("POST /requests takes application/json or multipart/form-data")


async def _from_form(request: Request, max_bytes: int) -> tuple[RequestInput, str]:
    try:
        items = parse_form(
            await body_within(request, max_bytes),
            request.headers["content-type"],
            max_files=1,
            max_fields=len(FORM_TEXTS),
        )
    except MalformedForm as exc:
        raise InvalidInput(f"malformed form body: {exc}") from None
    values: dict[str, Any] = {}
    sheet: bytes | None = None
    for key, value in items:
        if key not in FORM_TEXTS or key in values:
            raise InvalidInput(f"form field {key!r} is unknown or given twice; fields: {', '.join(FORM_TEXTS)}")
        if isinstance(value, FilePart):
            if key != "samplesheet":
                raise InvalidInput(f"form field {key!r} must be text, not a file")
            sheet = value.content
            values[key] = ""
            if (
                value.content_type
                and "samplesheet_type" not in values
                and value.content_type != "application/octet-stream"
            ):
                values["samplesheet_type"] = value.content_type
        else:
            values[key] = _form_value(key, value)
    digest = hashlib.sha256(sheet).hexdigest() if sheet is not None else None
    body_hash = idempotency.fingerprint({"fields": values, "samplesheet": digest})
    given = _input({k: v for k, v in values.items() if k != "samplesheet" or sheet is None})
    if sheet is not None:
        given.samplesheet = sheet
    return given, body_hash


def _form_value(key: str, value: str) -> Any:
    if key in JSON_TEXTS:
        return strict_json(value, f"form field {key}")
    if key in ("strict", "send_email_notification", "use_cached"):
        if value.strip().lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"form field {key} is true or false")
        return value.strip().lower() in ("true", "1")
    return value


def _input(raw: Any) -> RequestInput:
    return RequestInput(**validated(RequestBody, raw).model_dump())
