"""Dataset use cases: register by URI, upload into storage, list, read, delete.

A dataset is either a reference (``s3://``, ``https://``, ``file://`` inside
``settings.dataset_file_roots``, ``galaxy://dataset/<id>``) or a file flowdeck
holds in its storage (``storage_key``), uploaded through the API or through a
pre-signed URL. ``file://`` is refused unless the operator names roots: it
would otherwise let any client make the server read any file it can.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from flowdeck.db import datasets as dataset_rows
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.filters import DatasetFilter
from flowdeck.domain.principal import Principal
from flowdeck.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, Problem, ValidationFailed
from flowdeck.services.auth.guard import group_for_new_object as resolve_group  # not via runs: it imports us
from flowdeck.services.core import paging, url_policy
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import CHUNK, LocalStorage, S3Storage, Storage, open_storage

SCHEMES = ("s3://", "https://", "file://", "galaxy://dataset/<id>")
_GALAXY_ID = re.compile(r"[0-9a-f]{16,64}")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class NewDataset:
    name: str
    research_group: str | None = None
    uri: str | None = None
    galaxy_dataset_id: str | None = None
    checksum: str | None = None
    size: int | None = None
    media_type: str | None = None


def storage_of(services: AppContext) -> Storage:
    if services.storage is None:
        services.storage = open_storage(services.settings)
    return services.storage


def _problem(pointer: str, message: str, rule: str) -> ValidationFailed:
    return ValidationFailed(f"{pointer.lstrip('/')}: {message}", [Problem(pointer, message, rule)])


def check_reference(services: AppContext, new: NewDataset) -> None:
    """Normalise ``galaxy://dataset/<id>`` and refuse what flowdeck cannot read."""
    if not new.name.strip():
        raise _problem("/name", "a dataset needs a name", "required")
    if new.uri is None:
        if new.galaxy_dataset_id is None:
            raise _problem(
                "/uri", f"give a uri ({', '.join(SCHEMES)}), a galaxy_dataset_id, or upload a file", "required"
            )
    elif new.uri.startswith("galaxy://dataset/"):
        new.galaxy_dataset_id, new.uri = new.uri.removeprefix("galaxy://dataset/"), None
    elif new.uri.startswith("file://"):
        _check_file(services, new.uri)
    elif not (new.uri.startswith(("s3://", "https://")) and urlparse(new.uri).netloc):
        raise _problem("/uri", f"unsupported URI {new.uri[:200]!r}; supported: {', '.join(SCHEMES)}", "scheme")
    elif new.uri.startswith("https://"):
        # Galaxy, or flowdeck's staging, fetches it on the client's behalf: the SSRF policy applies.
        try:
            url_policy.check_reference(services.settings, new.uri, what="uri")
        except InvalidInput as exc:
            raise _problem("/uri", exc.detail, "ssrf") from None
    if new.galaxy_dataset_id is not None and not _GALAXY_ID.fullmatch(new.galaxy_dataset_id):
        raise _problem("/galaxy_dataset_id", "must be a Galaxy encoded id (16 to 64 lower-case hex digits)", "pattern")


def _check_file(services: AppContext, uri: str) -> None:
    roots = [root.resolve() for root in services.settings.dataset_file_roots]
    if not roots:
        raise _problem("/uri", "file:// datasets are disabled: no dataset_file_roots are configured", "scheme")
    path = Path(unquote(urlparse(uri).path)).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise _problem("/uri", f"file:// datasets must lie under {', '.join(map(str, roots))}", "file_roots")


async def register(
    services: AppContext,
    principal: Principal,
    new: NewDataset,
    *,
    storage_key: str | None = None,
    extra: dict[str, Any] | None = None,
    dataset_id: str | None = None,
) -> DatasetRecord:
    """Record a dataset (a reference, or one whose bytes are or will be in storage)."""
    if storage_key is None and (new.uri or "").startswith("https://"):
        await asyncio.to_thread(check_reference, services, new)  # resolves the host
    elif storage_key is None:
        check_reference(services, new)
    group = resolve_group(principal, new.research_group)
    now, new_id = utcnow(), dataset_id or str(uuid.uuid4())
    values = {
        "id": new_id,
        "name": new.name.strip()[:256],
        "research_group": group,
        "owner": principal.name,
        "uri": new.uri,
        "galaxy_dataset_id": new.galaxy_dataset_id,
        "storage_key": storage_key,
        "checksum": new.checksum,
        "size": new.size,
        "media_type": new.media_type,
        "extra": extra or {},
        "created_at": now,
        "updated_at": now,
    }
    async with services.db.write() as conn:
        await dataset_rows.insert(conn, values)
        row = await dataset_rows.get(conn, new_id)
    assert row is not None
    return row


def upload_key(dataset_id: str, filename: str) -> str:
    return f"datasets/{dataset_id}/{_SAFE_NAME.sub('_', filename).strip('._')[:128] or 'data'}"


async def upload(
    services: AppContext, principal: Principal, new: NewDataset, filename: str, stream: BinaryIO
) -> DatasetRecord:
    """Store the file, then record the dataset with its size and SHA-256."""
    resolve_group(principal, new.research_group)  # refuse before storing anything
    dataset_id = str(uuid.uuid4())
    key = upload_key(dataset_id, filename)
    new.size, digest = _measure(stream, services.settings.max_upload_bytes)
    new.checksum = new.checksum or f"sha256:{digest}"
    store = storage_of(services)
    store.put_stream(key, stream)
    try:
        return await register(services, principal, new, storage_key=key, dataset_id=dataset_id)
    except BaseException:
        store.delete(key)
        raise


def _measure(stream: BinaryIO, limit: int) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
        digest.update(chunk)
    stream.seek(0)
    return size, digest.hexdigest()


async def expect_upload(services: AppContext, principal: Principal, new: NewDataset, filename: str) -> DatasetRecord:
    """A dataset whose bytes arrive later through a pre-signed PUT."""
    dataset_id = str(uuid.uuid4())
    return await register(
        services,
        principal,
        new,
        storage_key=upload_key(dataset_id, filename),
        extra={"pending_upload": True},
        dataset_id=dataset_id,
    )


async def receive_upload(services: AppContext, key: str, stream: BinaryIO) -> None:
    """Bytes sent to a local pre-signed upload URL: store them, complete the dataset."""
    size, digest = _measure(stream, services.settings.max_upload_bytes)
    storage_of(services).put_stream(key, stream)
    async with services.db.write() as conn:
        dataset_id = key.split("/")[1] if key.startswith("datasets/") else ""
        row = await dataset_rows.get(conn, dataset_id)
        if row is not None and row.storage_key == key:
            await dataset_rows.update(
                conn,
                dataset_id,
                {
                    "size": size,
                    "checksum": f"sha256:{digest}",
                    "extra": {**row.extra, "pending_upload": False},
                    "updated_at": utcnow(),
                },
            )


async def get_visible(services: AppContext, dataset_id: str, principal: Principal) -> DatasetRecord:
    """The dataset, or NotFound if it does not exist or the caller may not see it."""
    async with services.db.read() as conn:
        row = await dataset_rows.get(conn, dataset_id)
    if row is None or not principal.can_see(row.research_group):
        raise NotFound(f"dataset {dataset_id} not found")
    if row.pending_upload and row.storage_key:
        row = await _settle_upload(services, row)
    return row


async def _settle_upload(services: AppContext, row: DatasetRecord) -> DatasetRecord:
    # An S3 pre-signed PUT goes straight to the bucket: the object's arrival is how we learn of it.
    store = storage_of(services)
    key = row.storage_key
    if key is None or not store.exists(key):
        return row
    values = {
        "size": store.size(key),
        "extra": {**row.extra, "pending_upload": False},
        "updated_at": utcnow(),
    }
    async with services.db.write() as conn:
        await dataset_rows.update(conn, row.id, values)
        settled = await dataset_rows.get(conn, row.id)
    return settled or row


async def list_page(
    services: AppContext,
    principal: Principal,
    flt: DatasetFilter,
    page_size: int | None,
    page_token: str | None,
) -> tuple[list[DatasetRecord], str]:
    groups = principal.visible_groups()
    if groups is not None:
        flt = DatasetFilter(**{**flt.__dict__, "groups": groups})
    return await paging.newest_first(
        services, page_size, page_token, lambda conn, limit, after: dataset_rows.page(conn, flt, limit, after)
    )


async def delete(services: AppContext, dataset_id: str, principal: Principal) -> None:
    """Soft-delete the dataset and drop its stored bytes; Conflict while runs use it."""
    row = await get_visible(services, dataset_id, principal)
    async with services.db.write() as conn:
        used = await dataset_rows.runs_using(conn, dataset_id)
        if used:
            raise Conflict(f"dataset {dataset_id} is used by {used} run(s); it cannot be deleted", runs=used)
        await dataset_rows.update(conn, dataset_id, {"deleted_at": utcnow(), "updated_at": utcnow()})
    if row.storage_key:
        storage_of(services).delete(row.storage_key)


def upload_url(services: AppContext, row: DatasetRecord, base_url: str) -> str:
    """The pre-signed PUT that delivers an expected upload's bytes (:func:`expect_upload`)."""
    if not row.storage_key or not row.pending_upload:
        raise Conflict(f"dataset {row.id} is not waiting for an upload")
    return storage_of(services).presign(row.storage_key, "PUT", base_url)


def download_url(services: AppContext, row: DatasetRecord, base_url: str) -> str | None:
    if not row.storage_key or row.pending_upload:
        return None
    return storage_of(services).presign(row.storage_key, "GET", base_url)


def run_reference(services: AppContext, row: DatasetRecord) -> dict[str, Any]:
    """The dataset as a backend's dataset reference (``uri`` and/or ``galaxy_dataset_id``).

    The run keeps this lasting name; it is made fetchable only when the run is handed
    to its engine (:func:`flowdeck.services.core.storage.for_engine`: ``s3://`` becomes a
    pre-signed URL then, so a run dispatched or rerun hours later never holds an
    expired link)."""
    ref: dict[str, Any] = {"name": row.name}
    if row.galaxy_dataset_id:
        ref["galaxy_dataset_id"] = row.galaxy_dataset_id
    elif row.storage_key:
        store = storage_of(services)
        # A local file is handed over by path (the Galaxy backend uploads its bytes); S3 as s3://.
        if isinstance(store, S3Storage):
            ref["uri"] = store.uri(row.storage_key)
        else:
            assert isinstance(store, LocalStorage)
            ref["uri"] = store.file_path(row.storage_key).as_uri()
    else:
        ref["uri"] = row.uri
    return ref
