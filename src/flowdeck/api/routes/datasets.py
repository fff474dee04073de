"""Datasets: register by URI, upload a file, get a pre-signed upload URL; list, read, delete.

Local storage's pre-signed URLs land on ``/storage/{token}`` here.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from flowdeck.api.deps import BaseUrlDep, PrincipalDep, ServicesDep
from flowdeck.api.http_body import (
    body_schema,
    bounded,
    chunks_within,
    json_within,
    refuse_declared_length,
    validated,
)
from flowdeck.api.readable_json import ReadableJSONResponse
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.filters import DatasetFilter
from flowdeck.errors import InvalidInput, NotFound, Problem, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import LocalStorage, read_chunks
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.datasets.service import NewDataset

router = APIRouter(tags=["datasets"])


class DatasetBody(BaseModel):
    """``POST /datasets`` as JSON: register by URI or Galaxy id, or ask for an upload URL."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    research_group: str | None = None
    uri: str | None = None
    galaxy_dataset_id: str | None = None
    checksum: str | None = None
    size: int | None = None
    media_type: str | None = None
    upload: bool | None = None
    filename: str | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dataset_view(services: AppContext, row: DatasetRecord, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "research_group": row.research_group,
        "owner": row.owner,
        "uri": row.uri,
        "galaxy_dataset_id": row.galaxy_dataset_id,
        "stored": row.storage_key is not None,
        "pending_upload": row.pending_upload,
        "checksum": row.checksum,
        "size": row.size,
        "media_type": row.media_type,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "download_url": dataset_service.download_url(services, row, base),
        "links": {"self": f"{base}/datasets/{row.id}", "jobs": f"{base}/jobs?dataset_id={row.id}"},
    }


@router.post("/datasets", status_code=201, openapi_extra=body_schema(DatasetBody))
async def create_dataset(
    request: Request, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> JSONResponse:
    """JSON ``{name, research_group, uri | galaxy_dataset_id, checksum, size, media_type}``,
    JSON ``{name, research_group, upload: true}`` for a pre-signed upload URL, or
    multipart (``file`` plus the same fields) to upload into flowdeck's storage."""
    refuse_declared_length(request, services.settings.max_upload_bytes)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _create_from_upload(request, services, principal, base)
    body = validated(DatasetBody, await json_within(request, services.settings.max_upload_bytes))
    filename = body.filename or body.name
    new = NewDataset(**body.model_dump(exclude={"upload", "filename"}))
    if body.upload:
        row = await dataset_service.expect_upload(services, principal, new, filename)
        view = dataset_view(services, row, base)
        view["upload_url"] = dataset_service.upload_url(services, row, base)
        view["upload_method"] = "PUT"
        return JSONResponse(view, status_code=201)
    row = await dataset_service.register(services, principal, new)
    return JSONResponse(dataset_view(services, row, base), status_code=201)


async def _create_from_upload(request: Request, services: AppContext, principal: Any, base: str) -> JSONResponse:
    limit = services.settings.max_upload_bytes
    async with bounded(request, limit).form(max_files=1, max_fields=20, max_part_size=limit) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ValidationFailed(
                "a multipart dataset needs a 'file' part", [Problem("/file", "is required", "required")]
            )
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        unknown = sorted(set(fields) - {"name", "research_group", "media_type"})
        if unknown:
            raise InvalidInput(f"unknown form field {unknown[0]!r}; fields: file, name, research_group, media_type")
        new = NewDataset(
            name=fields.get("name") or file.filename or "upload",
            research_group=fields.get("research_group"),
            media_type=fields.get("media_type") or file.content_type,
        )
        row = await dataset_service.upload(services, principal, new, file.filename or new.name, file.file)
    return JSONResponse(dataset_view(services, row, base), status_code=201)


@router.get("/datasets")
async def list_datasets(
    services: ServicesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
    research_group: str | None = None,
    name: str | None = None,
    owner: str | None = None,
    page_size: Annotated[int | None, Query(description="Datasets per page.")] = None,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page.")] = None,
) -> JSONResponse:
    """Datasets the caller may see, newest first, in keyset pages."""
    flt = DatasetFilter(research_group=research_group, name=name, owner=owner)
    rows, token = await dataset_service.list_page(services, principal, flt, page_size, page_token or None)
    return ReadableJSONResponse({"datasets": [dataset_view(services, r, base) for r in rows], "next_page_token": token})


@router.get("/datasets/{dataset_id}")
async def get_dataset(
    dataset_id: str, services: ServicesDep, principal: PrincipalDep, base: BaseUrlDep
) -> JSONResponse:
    row = await dataset_service.get_visible(services, dataset_id, principal)
    return ReadableJSONResponse(dataset_view(services, row, base))


@router.delete("/datasets/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Delete a dataset; refused (409) while runs use it."""
    await dataset_service.delete(services, dataset_id, principal)
    return Response(status_code=204)


def _local(services: AppContext) -> LocalStorage:
    store = dataset_service.storage_of(services)
    if not isinstance(store, LocalStorage):
        raise NotFound("this link is not valid")
    return store


@router.get("/storage/{token}", include_in_schema=False)
async def download(token: str, services: ServicesDep) -> StreamingResponse:
    """A local pre-signed download URL (the token is the credential)."""
    store = _local(services)
    key = store.verify(token, "GET")
    return StreamingResponse(
        read_chunks(store.open(key)),
        media_type="application/octet-stream",
        headers={"Content-Length": str(store.size(key))},
    )


@router.put("/storage/{token}", include_in_schema=False, status_code=204)
async def upload(token: str, request: Request, services: ServicesDep) -> Response:
    """A local pre-signed upload URL: the body is the file."""
    key = _local(services).verify(token, "PUT")
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
        async for chunk in chunks_within(request, services.settings.max_upload_bytes):
            spool.write(chunk)
        spool.seek(0)
        await dataset_service.receive_upload(services, key, spool)  # type: ignore[arg-type]
    return Response(status_code=204)
