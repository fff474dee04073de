"""A run exported as a Workflow Run RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5), zipped.

What goes in it is read here, through the same visibility rule and output checks as every other
run read; how it is described is :mod:`flowdeck.services.ro_crate_entities`. The zip is written to
a temporary file (never held in memory) that the caller deletes once it has been sent.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowdeck.db import datasets as dataset_rows
from flowdeck.db import events as event_rows
from flowdeck.db import tasks as task_rows
from flowdeck.domain.principal import Principal
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import Conflict, NotFound
from flowdeck.services import runs as run_service
from flowdeck.services.context import Services
from flowdeck.services.ro_crate_entities import OutputFile, RunRecord, build_crate

# Tasks and events read for one crate: far above what one run records, and a bound all the same.
_MAX_ROWS = 100_000


async def export_run(services: Services, run_id: str, principal: Principal) -> Path:
    """The crate of one ended run the caller may see, as a zip in a temporary file (caller deletes it).

    NotFound for a run the caller may not see; Conflict for a run that has not ended yet.
    """
    row = await run_service.get_visible(services, run_id, principal)
    if not is_terminal(State(row["state"])):
        raise Conflict(f"run {run_id} is {row['state']}: its RO-Crate can be exported once it has ended")
    record = await _record(services, row)
    return await asyncio.to_thread(_write_zip, record)


def crate_filename(run_id: str) -> str:
    """The name a downloaded crate is saved under."""
    return f"run-{run_id}-ro-crate.zip"


async def _record(services: Services, row: Mapping[str, Any]) -> RunRecord:
    attachments = await run_service.stored_attachments(services, row)
    async with services.db.read() as conn:
        tasks = await task_rows.page(conn, row["id"], None, _MAX_ROWS)
        events = await event_rows.for_run(conn, row["id"], limit=_MAX_ROWS)
        dataset = await dataset_rows.get(conn, row["dataset_id"]) if row["dataset_id"] else None
    engine_version = row["workflow_engine_version"] or await asyncio.to_thread(
        services.backends.engine_version, row["backend"]
    )
    return RunRecord(
        run=row,
        attachments=attachments,
        tasks=tasks,
        events=events,
        dataset=dataset,
        outputs=[_output(services, row, item) for item in row["output_files"] or []],
        engine_version=engine_version,
    )


def _output(services: Services, row: Mapping[str, Any], item: Mapping[str, Any]) -> OutputFile:
    """An output file: its local copy when it lies in the run's folder (the rule outputs are served
    by), otherwise only its reference."""
    try:
        path: Path | None = run_service.log_file(services, row, item.get("location"))
    except NotFound:
        path = None
    return OutputFile(name=str(item.get("name") or item.get("location")), location=item.get("location"), path=path)


def _write_zip(record: RunRecord) -> Path:
    handle, name = tempfile.mkstemp(prefix="flowdeck-crate-", suffix=".zip")
    os.close(handle)
    try:
        build_crate(record).write_zip(name)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
