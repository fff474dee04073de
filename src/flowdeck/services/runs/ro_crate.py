"""A run exported as a Workflow Run RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5), zipped.

What goes in it is read here, through the same visibility rule and output checks as every other
run read; how it is described is :mod:`flowdeck.services.runs.ro_crate_entities`. The zip is written to
a temporary file (never held in memory) that the caller deletes once it has been sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.db import datasets as dataset_rows
from flowdeck.db import events as event_rows
from flowdeck.db import requests as request_rows
from flowdeck.db import tasks as task_rows
from flowdeck.domain.principal import Principal
from flowdeck.domain.runs import RunRecord as StoredRun
from flowdeck.domain.states import is_terminal
from flowdeck.errors import Conflict, EngineError, NotFound
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import CHUNK, Storage
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.execution.handles import handle_of
from flowdeck.services.requests import service as request_service
from flowdeck.services.runs import service as run_service
from flowdeck.services.runs.attachments import Attachment

if TYPE_CHECKING:
    from flowdeck.services.runs.ro_crate_entities import OutputFile, RunRecord

log = logging.getLogger(__name__)
# Tasks and events read for one crate: far above what one run records, and a bound all the same.
_MAX_ROWS = 100_000
# Runs of one request in one crate (a request of more is refused rather than cut short).
_MAX_RUNS = 10_000


async def export_run(services: AppContext, run_id: str, principal: Principal) -> Path:
    """The crate of one ended run the caller may see, as a zip in a temporary file (caller deletes it).

    NotFound for a run the caller may not see; Conflict for a run that has not ended yet.
    """
    row = await run_service.get_visible(services, run_id, principal)
    _check_ended(row)
    record = await _record(services, row)
    description = row.description or f"Run {run_id} of {row.workflow_url} ({row.workflow_type})"
    return await asyncio.to_thread(_write_zip, storage_of(services), [record], f"flowdeck run {run_id}", description)


async def export_request(services: AppContext, request_id: str, principal: Principal) -> Path:
    """One crate of a request and all its runs (each its own CreateAction of the shared workflow).

    NotFound for a request the caller may not see; Conflict until it has runs and all have ended.
    """
    request = await request_service.get_visible(services, request_id, principal)
    async with services.db.read() as conn:
        members = await request_rows.run_page(conn, request_id, None, _MAX_RUNS)
    if len(members) >= _MAX_RUNS:
        raise Conflict(f"request {request_id} has more than {_MAX_RUNS - 1} runs: export them one by one")
    if not members:
        raise Conflict(f"request {request_id} has no runs yet: its RO-Crate can be exported once they have ended")
    rows = [await run_service.get_visible(services, m.id, principal) for m in members]
    for row in rows:
        _check_ended(row)
    records = [await _record(services, row) for row in rows]
    name = f"flowdeck request {request_id}: {request.pipeline_name} {request.pipeline_version or ''}".strip()
    description = f"{len(rows)} run(s) of {request.pipeline_name}, with their provenance"
    return await asyncio.to_thread(_write_zip, storage_of(services), records, name, description)


def crate_filename(kind: str, object_id: str) -> str:
    """The name a downloaded crate is saved under: ``run-<id>-ro-crate.zip``, ``request-…``."""
    return f"{kind}-{object_id}-ro-crate.zip"


def _check_ended(row: StoredRun) -> None:
    if not is_terminal(row.state):
        raise Conflict(f"run {row.id} is {row.state}: its RO-Crate can be exported once it has ended")


async def _record(services: AppContext, row: StoredRun) -> RunRecord:
    attachments = await run_service.stored_attachments(services, row)
    async with services.db.read() as conn:
        tasks = await task_rows.page(conn, row.id, None, _MAX_ROWS)
        events = await event_rows.for_run(conn, row.id, limit=_MAX_ROWS)
        dataset = await dataset_rows.get(conn, row.dataset_id) if row.dataset_id else None
    engine_version = row.workflow_engine_version or await asyncio.to_thread(
        services.backends.engine_version, row.backend
    )
    # Imported on first export, like every use below: rocrate brings requests and arcp, which an
    # API process should not hold until someone asks for a crate (test_api_startup_memory.py).
    from flowdeck.services.runs.ro_crate_entities import RunRecord

    return RunRecord(
        run=row,
        attachments=attachments,
        tasks=tasks,
        events=events,
        dataset=dataset,
        outputs=_outputs(services, row),
        engine_version=engine_version,
        workflow_file=await _engine_workflow(services, row, attachments),
    )


async def _engine_workflow(services: AppContext, row: StoredRun, attachments: list[Attachment]) -> Attachment | None:
    """The workflow as the run's engine stores it (Galaxy's export), when no attachment is the
    workflow; None when the engine keeps none or cannot be reached (the crate then references it)."""
    if row.backend_run_id is None or row.backend not in services.backends:
        return None
    if any(a.name == row.workflow_url.removeprefix("./") for a in attachments):
        return None
    backend = services.backends.get(row.backend)
    try:
        found = await asyncio.to_thread(backend.workflow_document, handle_of(row, services.runs_dir))
    except EngineError as exc:
        log.warning("workflow of run %s not read from its engine for its RO-Crate: %s", row.id, exc.detail)
        return None
    return Attachment(name=found[0], content=found[1]) if found else None


def _outputs(services: AppContext, row: StoredRun) -> list[OutputFile]:
    """The run's output files: from storage once its results are there (the files the API serves),
    else from its folder (runs that ended before flowdeck kept results in storage)."""
    from flowdeck.services.runs.ro_crate_entities import OutputFile

    record = row.results
    if record is None or record.get("live"):
        return [_output(services, row, item) for item in row.output_files or []]
    return [
        OutputFile(name=f["name"], location=f.get("location"), path=None, key=f.get("key")) for f in record["files"]
    ]


def _output(services: AppContext, row: StoredRun, item: Mapping[str, Any]) -> OutputFile:
    """An output file: its local copy when it lies in the run's folder (the rule outputs are served
    by), otherwise only its reference."""
    try:
        path: Path | None = run_service.log_file(services, row.id, item.get("location"))
    except NotFound:
        path = None
    from flowdeck.services.runs.ro_crate_entities import OutputFile

    return OutputFile(name=str(item.get("name") or item.get("location")), location=item.get("location"), path=path)


def _write_zip(store: Storage, records: list[RunRecord], name: str, description: str) -> Path:
    handle, target = tempfile.mkstemp(prefix="flowdeck-crate-", suffix=".zip")
    os.close(handle)
    try:
        from flowdeck.services.runs.ro_crate_entities import build_crate

        # Stored outputs are copied out of the store (local or S3) for as long as the zip is written.
        with tempfile.TemporaryDirectory(prefix="flowdeck-crate-") as fetched:
            local = [_fetched(store, record, Path(fetched)) for record in records]
            build_crate(local, name, description).write_zip(target)
    except BaseException:
        Path(target).unlink(missing_ok=True)
        raise
    return Path(target)


def _fetched(store: Storage, record: RunRecord, into: Path) -> RunRecord:
    """``record`` with each stored output copied from ``store`` into ``into`` (blocking)."""
    outputs = []
    for index, output in enumerate(record.outputs):
        if output.key is not None:
            path = into / record.run.id / str(index)
            path.parent.mkdir(parents=True, exist_ok=True)
            with store.open(output.key) as source, path.open("wb") as target:
                shutil.copyfileobj(source, target, CHUNK)
            output = replace(output, path=path)
        outputs.append(output)
    return replace(record, outputs=outputs)
