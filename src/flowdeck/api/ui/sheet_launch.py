"""Launching a pipeline over a sample sheet from the browser: one request (seed 001) whose rows
become one run each. The upload goes through the requests service as ``POST /requests`` with a
``samplesheet`` does: the same validation (every bad row listed, nothing created), the same
visibility and quotas; the worker then creates the runs."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from flowdeck.api.ui import web
from flowdeck.api.ui.launch_form import FormField, pipeline_form, shared_parameters_of
from flowdeck.errors import InvalidInput, PayloadTooLarge, Problem, ValidationFailed
from flowdeck.services.requests import service as request_service
from flowdeck.services.requests.items import RequestInput

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)
_LINE = re.compile(r"line (\d+): (.*)", re.DOTALL)
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
Refused = InvalidInput | PayloadTooLarge
# One form field per shared parameter: room for a Galaxy tool's many, still a bound on the parser.
MAX_FIELDS = 300


@router.get("/launch/{name}/sheet")
async def sheet_form(name: str, request: Request, version: str | None = None) -> Response:
    """The sample-sheet form of the pipeline's newest version, or of ``version``."""
    user = await web.require_user(request)
    services = web.services_of(request)
    pipeline, fields = await pipeline_form(services, user, name, version)
    return _page(request, pipeline, fields, {})


@router.post("/launch/{name}/sheet")
async def launch_sheet(name: str, request: Request) -> Response:
    """Accept the sheet as one request and go to its page; a refused sheet lists its problems."""
    user = await web.require_user(request)
    services = web.services_of(request)
    async with web.upload_form(request, services.settings.max_upload_bytes, MAX_FIELDS) as posted:
        fields_posted = {k: v for k, v in posted.items() if isinstance(v, str)}
        file = posted.get("samplesheet")
        sheet = file.file.read() if isinstance(file, UploadFile) and file.filename else None
        filename = file.filename if isinstance(file, UploadFile) else None
    pipeline, fields = await pipeline_form(services, user, name, fields_posted.get("version"))
    try:
        if sheet is None:
            raise ValidationFailed(
                "choose a sample sheet file", [Problem("", "choose a sample sheet file", "required")]
            )
        given = RequestInput(
            pipeline_name=pipeline.name,
            pipeline_version=str(pipeline.version),
            research_group=fields_posted.get("research_group", "").strip() or None,
            description=fields_posted.get("description", "").strip() or None,
            parameters=shared_parameters_of(fields, fields_posted),
            samplesheet=sheet,
            samplesheet_type=_SUFFIXES.get(PurePath(filename or "").suffix.lower()),
        )
        accepted = await request_service.accept(services, user, given)
    except (InvalidInput, PayloadTooLarge) as exc:
        return _page(request, pipeline, fields, fields_posted, exc)
    return RedirectResponse(f"{web.PREFIX}/requests/{accepted['request_id']}", status_code=303)


def sheet_problems(problems: list[Problem]) -> list[dict[str, str]]:
    """Each problem as the page lists it: the sheet's row (counting from 1 after the header), the
    file's line, the column, and the message."""
    listed = []
    for problem in problems:
        found = _LINE.fullmatch(problem.message)
        line, message = found.groups() if found else ("", problem.message)
        row, column = _place(problem.pointer)
        listed.append({"row": row, "line": line, "column": column, "message": message})
    return listed


def _place(pointer: str) -> tuple[str, str]:
    """Where a pointer (``/rows/7/fastq_r1``, ``/columns/2``, ``/common/caller``) is in the sheet."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    head, rest = (parts[0], parts[1:]) if parts else ("", [])
    if head == "rows" and rest and rest[0].isdigit():
        return str(int(rest[0]) + 1), "/".join(rest[1:])
    if head == "columns":
        return "header", f"column {int(rest[0]) + 1}" if rest and rest[0].isdigit() else ""
    if head in ("common", "parameters"):
        return "shared parameters", "/".join(rest)
    return "every row" if head == "rows" else "", ""


def _page(
    request: Request,
    pipeline: Any,
    fields: list[FormField],
    posted: dict[str, str],
    error: Refused | None = None,
) -> Response:
    problems = sheet_problems(error.problems) if isinstance(error, ValidationFailed) else []
    return web.render(
        request,
        "launch_sheet.html",
        status_code=error.status_code if error else 200,
        pipeline=pipeline,
        fields=fields,
        posted=posted,
        error=error.detail if error else None,
        problems=problems,
    )
