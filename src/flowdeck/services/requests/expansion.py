"""Expanding a claimed request into its runs, idempotently.

Run ``i`` of a request is stored with ``request_index = i`` under a UNIQUE
(request_id, request_index) constraint. Expansion skips the indexes that
already exist, and an insert that loses a race to another worker (whose lease
had expired) is refused by the constraint and skipped, so a worker killed
mid-expansion never leaves duplicates: the next one completes the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from flowdeck.db import requests as request_rows
from flowdeck.domain.principal import Principal
from flowdeck.domain.requests import RequestRecord
from flowdeck.errors import FlowdeckError
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.requests.service import cancel_runs
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.pipeline_runs import build_run
from flowdeck.services.runs.service import submit

log = logging.getLogger(__name__)
ACTOR = "worker"
RENEW_EVERY = 25


@dataclass(frozen=True)
class Progress:
    """What one expansion step did: runs created, and whether the request is settled."""

    created: int
    settled: bool


async def expand(services: AppContext, row: RequestRecord, owner: str, limit: int) -> Progress:
    """Create up to ``limit`` missing runs of a request this worker has claimed.

    Settles the request (``submitted``, or ``failed`` with a message) once every
    run exists or expansion cannot go on; otherwise the caller releases it.
    """
    request_id = row.id
    async with services.db.read() as conn:
        existing = await request_rows.run_indexes(conn, request_id)
        canceled = await request_rows.is_cancel_requested(conn, request_id)
    items: list[dict[str, Any]] = row.spec["items"]
    if canceled:
        await _fail(
            services, request_id, f"canceled before expansion finished ({len(existing)} of {len(items)} runs created)"
        )
        return Progress(0, True)
    try:
        pipeline = services.catalog.get(row.pipeline_name or "", row.pipeline_version)
    except FlowdeckError as exc:
        await _fail(services, request_id, f"cannot expand: {exc.detail}")
        return Progress(0, True)
    created = 0
    for index, item in enumerate(items):
        if index in existing:
            continue
        if created >= limit:
            return Progress(created, False)
        try:
            created += await create_run(services, pipeline, row, index, item)
        except FlowdeckError as exc:
            done = len(existing) + created
            await _fail(
                services,
                request_id,
                f"run {index} could not be created: {exc.detail} ({done} of {len(items)} runs created)",
            )
            return Progress(created, True)
        if created % RENEW_EVERY == 0 and not await _still_ours(services, request_id, owner):
            return Progress(created, True)
    await _settle(services, request_id, len(items))
    return Progress(created, True)


async def create_run(
    services: AppContext, pipeline: Pipeline, row: RequestRecord, index: int, item: dict[str, Any]
) -> int:
    """Create run ``index`` of the request; 0 if it already exists (the UNIQUE constraint says so)."""
    new = build_run(
        services,
        pipeline,
        item["parameters"],
        research_group=row.research_group,
        description=row.spec.get("description"),
        dataset=item.get("dataset"),
        dataset_id=item.get("dataset_id"),
        strict=True,
        origin="requests",
    )
    new.request_id, new.request_index = row.id, index
    new.use_cached = bool(item.get("use_cached"))
    new.tags = {**new.tags, "request_id": row.id}
    owner = Principal(name=row.owner or "unknown", unrestricted=True, via="request")
    try:
        await submit(services, new, owner)
    except IntegrityError:
        log.info("request %s: run %d already exists; skipped", row.id, index)
        return 0
    return 1


async def _still_ours(services: AppContext, request_id: str, owner: str) -> bool:
    until = utcnow() + timedelta(seconds=services.settings.lease_seconds)
    async with services.db.write() as conn:
        ours = await request_rows.renew(conn, request_id, owner, until)
    if not ours:
        log.warning("request %s: lease lost during expansion; another worker continues", request_id)
    return ours


async def _settle(services: AppContext, request_id: str, total: int) -> None:
    async with services.db.write() as conn:
        await state_machine.transition_request(
            conn,
            request_id,
            "new",
            "submitted",
            now=utcnow(),
            reason=f"all {total} runs created",
            actor=ACTOR,
        )
        canceled = await request_rows.is_cancel_requested(conn, request_id)
    if canceled:
        # A cancel that arrived while the last runs were being created must reach them too.
        await cancel_runs(services, request_id, ACTOR)


async def _fail(services: AppContext, request_id: str, message: str) -> None:
    async with services.db.write() as conn:
        await state_machine.transition_request(
            conn,
            request_id,
            "new",
            "failed",
            now=utcnow(),
            reason=message,
            actor=ACTOR,
            message=message,
        )
    await cancel_runs_if_canceled(services, request_id)


async def cancel_runs_if_canceled(services: AppContext, request_id: str) -> None:
    async with services.db.read() as conn:
        canceled = await request_rows.is_cancel_requested(conn, request_id)
    if canceled:
        await cancel_runs(services, request_id, ACTOR)
