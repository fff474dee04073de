"""The datasets page: the input data the caller's groups may use, newest first, and an upload form.

Listing and uploading call the datasets service as ``GET /datasets`` and ``POST /datasets`` do:
the same visibility, the same size limit and SHA-256, the same storage.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from flowdeck.api.deps import base_url
from flowdeck.api.ui import views, web
from flowdeck.domain.filters import DatasetFilter
from flowdeck.errors import ValidationFailed
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.datasets.service import NewDataset

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)
PAGE_SIZE = 50
FILTERS = ("name", "group")
_FIELD_OF = {"/name": "name", "/uri": "uri", "/galaxy_dataset_id": "uri", "/research_group": "research_group"}


# A declared page_token also makes this page take turns with the API's lists (api/admission.py).
@router.get("/datasets")
async def datasets_page(request: Request, page_token: Annotated[str | None, Query()] = None) -> Response:
    user = await web.require_user(request)
    services = web.services_of(request)
    chosen = {name: value for name in FILTERS if (value := request.query_params.get(name, "").strip())}
    flt = DatasetFilter(name=chosen.get("name"), research_group=chosen.get("group"))
    rows, next_token = await dataset_service.list_page(services, user, flt, PAGE_SIZE, page_token or None)
    base = await base_url(request)
    return web.render(
        request,
        "datasets.html",
        datasets=[_row(services, row, base) for row in rows],
        filters=chosen,
        page_token=page_token or "",
        next_token=next_token,
        groups=sorted(user.groups),
    )


@router.post("/datasets")
async def upload(request: Request) -> Response:
    """Store the chosen file as a new dataset, then list it."""
    user = await web.require_user(request)
    services = web.services_of(request)
    async with web.upload_form(request, services.settings.max_upload_bytes) as posted:
        file = posted.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise ValidationFailed("choose a file to upload")
        fields = {k: v.strip() for k, v in posted.items() if isinstance(v, str)}
        new = NewDataset(
            name=fields.get("name") or file.filename,
            research_group=fields.get("research_group") or None,
            media_type=file.content_type,
        )
        row = await dataset_service.upload(services, user, new, file.filename, file.file)
    return RedirectResponse(f"{web.PREFIX}/datasets?{urlencode({'name': row.name})}", status_code=303)


@router.post("/datasets/register")
async def register_uri(request: Request) -> Response:
    """Record a dataset by URI through the same registration as ``POST /datasets`` (its schemes,
    its file roots and its SSRF policy), then list it; a refused URI is shown beside its field."""
    posted = await web.form(request)
    user = await web.require_user(request)
    fields = {k: v.strip() for k, v in posted.items()}
    new = NewDataset(
        name=fields.get("name", ""), research_group=fields.get("research_group") or None, uri=fields.get("uri") or None
    )
    try:
        row = await dataset_service.register(web.services_of(request), user, new)
    except ValidationFailed as exc:
        # A galaxy://dataset/<id> URI is checked as its galaxy_dataset_id: the problem is the URI's.
        problems = {_FIELD_OF.get(p.pointer, p.pointer): p.message for p in exc.problems}
        unplaced = None if set(problems) & set(_FIELD_OF.values()) else exc.detail
        return web.render(
            request,
            "dataset_register.html",
            status_code=exc.status_code,
            posted=fields,
            problems=problems,
            error=unplaced,
        )
    return RedirectResponse(f"{web.PREFIX}/datasets?{urlencode({'name': row.name})}", status_code=303)


def _row(services: Any, row: Any, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "group": row.research_group,
        "owner": row.owner,
        "size": row.size,
        "checksum": row.checksum,
        "where": row.uri or (f"galaxy:{row.galaxy_dataset_id}" if row.galaxy_dataset_id else "uploaded"),
        "created": views.when(row.created_at),
        "download": dataset_service.download_url(services, row, base),
    }
