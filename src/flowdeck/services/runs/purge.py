"""Deleting an ended run (``DELETE`` on either door) and expiring old ones (retention).

A deletion removes the run's stored files (its ``results`` record names every key), its rows
(tasks, tags, attachments, events, idempotency links) and its folder on this host, and writes one
row to ``run_deletions``: the run's events go with it, so the audit of who deleted what, when and
why lives in a table of its own that outlives the run (docs/adr/0021). Files go first: if the rows
could not be deleted after, the run is still there and a second delete finishes the job; rows
first would leave files no record names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flowdeck.db import deletions
from flowdeck.domain.principal import Principal
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import ConfigurationError, Conflict, Forbidden
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import Storage
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.runs import results
from flowdeck.services.runs import service as run_service
from flowdeck.services.runs.attachments import RunFolder, run_folder

log = logging.getLogger(__name__)
PURGE_BATCH = 100


@dataclass(frozen=True)
class Deleted:
    """What one deletion removed."""

    run_id: str
    files: int
    bytes: int

    def summary(self) -> dict[str, Any]:
        return {"deleted": True, "files": self.files, "bytes": self.bytes}


def may_delete(principal: Principal, run: RunRecord) -> bool:
    """The run's owner, an admin of its group, or a service admin."""
    group = run.research_group
    return principal.sees_all or principal.name == run.owner or (group is not None and principal.is_group_admin(group))


async def delete(services: AppContext, run_id: str, principal: Principal) -> Deleted:
    """Delete one ended run the caller may see and delete; 409 while it has not ended."""
    run = await run_service.get_visible(services, run_id, principal)
    if not may_delete(principal, run):
        raise Forbidden(f"run {run_id} may be deleted by its owner, its group's admins or a service admin")
    if not is_terminal(run.state):
        raise Conflict(
            f"run {run_id} is {run.state}: only an ended run can be deleted; cancel it first and delete it once it has ended"
        )
    return await remove(services, run, actor=principal.name, reason="deleted on request")


async def remove(services: AppContext, run: RunRecord, *, actor: str, reason: str) -> Deleted:
    """Remove an ended run's stored files, folder and rows, and write its audit row."""
    keys = results.keys(run.results)
    await asyncio.to_thread(_remove_files, storage_of(services), keys, run_folder(services.runs_dir, run.id))
    gone = Deleted(run.id, len(keys), results.stored_bytes(run.results))
    try:
        async with services.db.write() as conn:
            await deletions.remove_run(conn, run, _audit(run, gone, actor, reason))
    except deletions.Changed:
        raise Conflict(f"run {run.id} changed or was deleted meanwhile; read it again") from None
    return gone


def _remove_files(store: Storage, keys: Sequence[str], folder: RunFolder) -> None:
    for key in keys:
        store.delete(key)
    folder.remove()  # on this host; a worker elsewhere removes its own (see purge_folders)


def _audit(run: RunRecord, gone: Deleted, actor: str, reason: str) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "research_group": run.research_group,
        "owner": run.owner,
        "pipeline_name": run.pipeline_name,
        "workflow_url": run.workflow_url,
        "state": run.state.value,
        "run_created_at": run.created_at,
        "run_end_time": run.end_time,
        "files": gone.files,
        "bytes": gone.bytes,
        "actor": actor,
        "reason": reason,
        "deleted_at": utcnow(),
    }


def retention_states(states: Sequence[str]) -> list[str]:
    """The states a purge may delete: ended WES states only."""
    try:
        chosen = [State(s.strip().upper()) for s in states]
    except ValueError:
        raise ConfigurationError(f"retention states must be WES states, not {list(states)}") from None
    if not chosen or not all(is_terminal(s) for s in chosen):
        raise ConfigurationError("retention states must be ended states (COMPLETE, EXECUTOR_ERROR, …)")
    return [s.value for s in chosen]


async def purge(
    services: AppContext, older_than: timedelta, states: Sequence[str], *, dry_run: bool = False, actor: str = "purge"
) -> list[Deleted]:
    """Delete every run in ``states`` that ended more than ``older_than`` ago, a batch at a time;
    ``dry_run`` only lists them (with what they hold in storage)."""
    wanted, cutoff = retention_states(states), utcnow() - older_than
    reason = f"retention: ended more than {older_than.total_seconds() / 86400:g} days ago"
    done: list[Deleted] = []
    seen: set[str] = set()
    while True:
        async with services.db.read() as conn:
            batch = [r for r in await deletions.ended_before(conn, wanted, cutoff, PURGE_BATCH) if r.id not in seen]
        if not batch:
            return done
        for run in batch:
            seen.add(run.id)
            if dry_run:
                done.append(Deleted(run.id, len(results.keys(run.results)), results.stored_bytes(run.results)))
                continue
            try:
                done.append(await remove(services, run, actor=actor, reason=reason))
            except Conflict:
                log.info("run %s changed while being purged; left for the next purge", run.id)


async def purge_by_settings(services: AppContext) -> list[Deleted]:
    """The worker's scheduled purge: nothing unless ``retention_days`` is set."""
    days = services.settings.retention_days
    if days is None:
        return []
    return await purge(services, timedelta(days=days), services.settings.retention_states, actor="worker")


async def purge_folders(services: AppContext) -> int:
    """Remove the run folders on this host whose run has been deleted (by the API on another host,
    say); returns how many. Only folders named like a run and with no row are touched."""
    root = services.runs_dir
    names = await asyncio.to_thread(
        lambda: sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    )
    removed = 0
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        async with services.db.read() as conn:
            alive = await deletions.existing(conn, chunk)
            gone = set(await deletions.deleted_ids(conn, [n for n in chunk if n not in alive]))
        for name in sorted(gone):
            await asyncio.to_thread(run_folder(root, name).remove)
            removed += 1
    return removed
