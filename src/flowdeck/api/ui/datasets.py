"""The datasets page: the input data the caller's groups may use, newest first, and an upload form.

Listing and uploading call the datasets service as ``GET /datasets`` and ``POST /datasets`` do:
the same visibility, the same size limit and SHA-256, the same storage. With JavaScript the form
uploads through a pre-signed PUT with a progress bar (static/upload.js); without it, the form's own
multipart POST does the same.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile

from flowdeck.api.deps import base_url
from flowdeck.api.ui import views, web
from flowdeck.domain.filters import DatasetFilter
from flowdeck.errors import InvalidInput, PayloadTooLarge, ValidationFailed
from flowdeck.services.core.storage import Storage
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
    page = web.render(
        request,
        "datasets.html",
        datasets=[_row(services, row, base) for row in rows],
        filters=chosen,
        page_token=page_token or "",
        next_token=next_token,
        groups=sorted(user.groups),
        max_bytes=services.settings.max_upload_bytes,
    )
    origin = upload_origin(dataset_service.storage_of(services), base)
    page.headers["Content-Security-Policy"] = web.csp(f"'self' {origin}")
    return page


def upload_origin(storage: Storage, base: str) -> str:
    """Where the browser PUTs an upload, for the page's connect-src: the origin of a pre-signed
    upload URL (flowdeck's own with local storage, the bucket's endpoint with S3)."""
    url = urlsplit(storage.presign(dataset_service.upload_key("probe", "probe"), "PUT", base))
    return f"{url.scheme}://{url.netloc}"


@router.post("/datasets/upload-url")
async def upload_url(request: Request) -> Response:
    """A pre-signed PUT for static/upload.js, as ``POST /datasets`` ``{upload: true}`` answers it:
    the dataset is recorded, pending, until its bytes arrive."""
    fields = {k: v.strip() for k, v in (await web.form(request)).items()}
    user = await web.require_user(request)
    services = web.services_of(request)
    filename = fields.get("filename", "")
    if not filename:
        raise ValidationFailed("choose a file to upload")
    size = fields.get("size") or "0"
    if not (size.isascii() and size.isdigit()):
        raise InvalidInput("size is the file's size in bytes")
    if int(size) > services.settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file is larger than {services.settings.max_upload_bytes} bytes")
    new = NewDataset(name=fields.get("name") or filename, research_group=fields.get("research_group") or None)
    row = await dataset_service.expect_upload(services, user, new, filename)
    target = dataset_service.upload_url(services, row, await base_url(request))
    return JSONResponse(
        {"id": row.id, "upload_url": target, "method": "PUT", "done": f"{web.PREFIX}/datasets/{row.id}"}
    )


@router.get("/datasets/{dataset_id}")
async def uploaded(request: Request, dataset_id: str) -> Response:
    """Where the browser goes once its PUT is done: the dataset (settled, as ``GET /datasets/{id}``
    settles an upload straight to S3), in the list."""
    user = await web.require_user(request)
    row = await dataset_service.get_visible(web.services_of(request), dataset_id, user)
    return RedirectResponse(f"{web.PREFIX}/datasets?{urlencode({'name': row.name})}", status_code=303)


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
        "pending": row.pending_upload,
        "checksum": row.checksum,
        "where": row.uri or (f"galaxy:{row.galaxy_dataset_id}" if row.galaxy_dataset_id else "uploaded"),
        "created": views.when(row.created_at),
        "download": dataset_service.download_url(services, row, base),
    }
