"""Call caching of whole runs (issue 20; docs/jobs.md "Call caching"; docs/adr/0026).

A submission with ``use_cached: true`` takes part: at submit its key is computed once
(:mod:`flowdeck.domain.call_cache`) from what is known then — the workflow's files, the resolved
parameters, the dataset's checksum, the engine and its version, and the SHA-256 of every
``file://`` input, read now. An input known only by ``s3://`` or ``https://`` (its content is learnt
when the worker stages it), a workflow named inside its engine (Galaxy, demo) or an engine that
cannot tell its version make the run not cacheable: it runs for real, and its first event says why.

The key is looked up among the COMPLETE runs of the same research group (there is no sharing
between groups, so never across them; the one visibility rule is checked on the found run too).
On a hit the new run is stored COMPLETE at once, ``cached_from`` naming the source, with the
source's outputs and run logs **copied** in storage under its own ``results/<id>/`` prefix: deleting
either run later never touches the other's objects. A miss stores the key, so the run answers
later identical submissions once it completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowdeck.backends.checksums import file_checksum
from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain import call_cache
from flowdeck.domain.principal import Principal
from flowdeck.domain.runs import RunRecord, RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import FlowdeckError
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import Storage
from flowdeck.services.datasets.service import get_visible as visible_dataset
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.execution import staging
from flowdeck.services.runs import results
from flowdeck.settings import Settings

if TYPE_CHECKING:
    from flowdeck.services.runs.service import NewRun

log = logging.getLogger(__name__)


class NotCacheable(Exception):
    """Why a run that asked for the cache cannot use it (said in its first event)."""


@dataclass(frozen=True)
class Decision:
    """What the cache made of one submission: its key (None: no caching), the note its first
    event carries, and on a hit the fields taken from the source run."""

    key: str | None = None
    note: str = ""
    hit: Mapping[str, Any] | None = None
    inputs: Mapping[str, str] | None = None  # JSON pointer -> checksum of each input read at submit

    @property
    def state(self) -> State:
        """The state the run is stored in: COMPLETE on a hit, QUEUED otherwise."""
        return State.COMPLETE if self.hit is not None else State.QUEUED

    def values(self, now: datetime) -> dict[str, Any]:
        """The run row's fields this decision sets (the same columns for every run): its key, and
        the input checksums the key was made of, which its dispatch checks again."""
        keyed = {"cache_key": self.key, "cache_inputs": dict(self.inputs) if self.inputs else None}
        if self.hit is None:
            return keyed
        ended = {"state": State.COMPLETE.value, "start_time": now, "end_time": now, "next_check_at": None}
        return {**keyed, **self.hit, **ended}

    async def discard(self, services: AppContext) -> None:
        """Remove a hit's copies when its run could not be stored after all."""
        if self.hit is not None:
            await asyncio.to_thread(_delete, storage_of(services), results.keys(self.hit["results"]))


def _delete(store: Storage, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)


async def consult(
    services: AppContext, new: NewRun, spec: RunSpec, engine: str, group: str | None, principal: Principal
) -> Decision:
    """The cache's answer for a validated submission (``spec.run_id`` is the new run's id)."""
    if not new.use_cached:
        return Decision()
    try:
        material, inputs = await _material(services, new, spec, engine, principal)
    except NotCacheable as exc:
        return Decision(note=f"call cache: not cacheable, so it runs for real: {exc}")
    key = call_cache.key(material)
    async with services.db.read() as conn:
        source = await run_rows.cache_source(conn, key, group)
    if source is None or not principal.can_see(source.research_group):
        note = f"call cache: no completed run with key {key[:16]} in this research group, so it runs"
        return Decision(key, note, inputs=inputs)
    try:
        copied = await asyncio.to_thread(copy_results, storage_of(services), source, spec.run_id)
    except (FlowdeckError, OSError) as exc:  # the source was deleted meanwhile, or the store failed
        log.warning("call cache: run %s's results could not be copied: %s", source.id, exc)
        note = f"call cache: run {source.id}'s stored outputs could not be copied, so it runs"
        return Decision(key, note, inputs=inputs)
    origin = source.cached_from or source.id  # the run that computed them, if source was a hit
    via = f", copied from run {source.id}" if origin != source.id else ", copied"
    note = f"call cache hit: completed at once with the outputs of run {origin} (key {key[:16]}){via}"
    return Decision(key, note, _taken_from(source, origin, copied))


async def check_staged(services: AppContext, run: RunRecord, staged: list[staging.Staged]) -> None:
    """Drop the key of a run whose inputs changed between submit and staging (an event says which):
    what it computes is not what its key describes, so it must never answer a later submission."""
    recorded = run.cache_inputs
    if not run.cache_key or not recorded:
        return
    changed = [
        s.input.pointer for s in staged if recorded.get(s.input.pointer, f"sha256:{s.sha256}") != f"sha256:{s.sha256}"
    ]
    if not changed:
        return
    reason = f"call cache: input {', '.join(changed)} changed between submit and staging; this run answers no later submission"
    async with services.db.write() as conn:
        await run_rows.update(conn, run.id, {"cache_key": None})
        await event_rows.add(conn, at=utcnow(), kind="call_cache", run_id=run.id, reason=reason, actor="worker")


def _taken_from(source: RunRecord, origin: str, copied: dict[str, Any]) -> dict[str, Any]:
    taken = ("outputs", "output_files", "exit_code", "cmd", "stdout_path", "stderr_path")
    return {"cached_from": origin, "results": copied, **{name: getattr(source, name) for name in taken}}


async def _material(
    services: AppContext, new: NewRun, spec: RunSpec, engine: str, principal: Principal
) -> tuple[call_cache.Material, dict[str, str]]:
    """The key's material, and the checksum of each input by JSON pointer."""
    attachments = {a.name: file_digest(a.content) for a in new.attachments}
    entry = new.workflow_url.strip().removeprefix("./")
    if entry not in attachments:
        raise NotCacheable(f"the workflow {entry[:200]!r} is named inside its engine: its content is unknown here")
    dataset_checksum = await _dataset_checksum(services, new, principal)
    inputs = _inputs(spec)
    digests = await asyncio.to_thread(_input_digests, services.settings, inputs) if inputs else {}
    _refuse_server_paths(spec.workflow_params, ())
    version = await asyncio.to_thread(services.backends.engine_version, engine)
    if version == "unknown":
        raise NotCacheable(f"engine {engine} did not tell its version")
    material = call_cache.Material(
        workflow_type=spec.workflow_type,
        workflow_type_version=spec.workflow_type_version,
        workflow_url=entry,
        attachments=attachments,
        params=call_cache.with_digests(spec.workflow_params, digests),
        engine_parameters=spec.engine_parameters,
        target={k: v for k, v in spec.pipeline_target.items() if k != "path"},  # a server path, not content
        dataset_checksum=dataset_checksum,
        engine=engine,
        engine_version=version,
    )
    return material, {item.pointer: digests[item.at] for item in inputs}


def file_digest(content: bytes) -> str:
    """``sha256:<hex>`` of bytes, the form of every checksum flowdeck records."""
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


async def _dataset_checksum(services: AppContext, new: NewRun, principal: Principal) -> str | None:
    if new.dataset_id is None:
        return None
    row = await visible_dataset(services, new.dataset_id, principal)
    if not row.checksum:
        raise NotCacheable(f"dataset {new.dataset_id} has no checksum")
    return str(row.checksum)


def _inputs(spec: RunSpec) -> list[staging.Input]:
    try:
        return staging.find(spec)
    except FlowdeckError as exc:  # a Directory input: not staged, so not checksummed
        raise NotCacheable(exc.detail) from None


def _input_digests(settings: Settings, inputs: list[staging.Input]) -> dict[call_cache.Pointer, str]:
    """The checksum of every input file, read now (blocking); NotCacheable for one that is not
    a ``file://`` input inside ``dataset_file_roots``."""
    try:
        return {item.at: _local_digest(settings, item) for item in inputs}
    except FlowdeckError as exc:
        raise NotCacheable(exc.detail) from None


def _local_digest(settings: Settings, item: staging.Input) -> str:
    if not item.uri.lower().startswith("file:///"):
        scheme = item.uri.split("://", 1)[0].lower()
        raise NotCacheable(f"input {item.pointer} is a {scheme}:// object, whose content is known only once staged")
    try:
        return file_checksum(staging.local_file(settings, item))
    except OSError as exc:
        raise NotCacheable(f"input {item.pointer} cannot be read: {exc.strerror}") from None


def _refuse_server_paths(node: Any, at: call_cache.Pointer) -> None:
    """An absolute path is a file the engine reads without flowdeck checksumming it."""
    if isinstance(node, str) and node.startswith("/"):
        raise NotCacheable(f"parameter /{'/'.join(map(str, at))} names a server path, whose content is not checksummed")
    if isinstance(node, list):
        for i, item in enumerate(node):
            _refuse_server_paths(item, (*at, i))
    elif isinstance(node, dict):
        for key, item in node.items():
            _refuse_server_paths(item, (*at, key))


def copy_results(store: Storage, source: RunRecord, run_id: str) -> dict[str, Any]:
    """Copy a completed run's stored output files and run logs to ``run_id``'s prefix; the
    ``results`` record naming the copies (blocking). A cached run has no tasks: task logs stay."""
    record = source.results or {}
    old, new = results.prefix(source.id), results.prefix(run_id)

    def moved(entry: Mapping[str, Any]) -> dict[str, Any]:
        key = str(entry["key"])
        if not key.startswith(old):
            raise OSError(f"stored object {key!r} lies outside run {source.id}'s results")
        with store.open(key) as body:
            store.put_stream(new + key.removeprefix(old), body)
        return {**entry, "key": new + key.removeprefix(old)}

    files = [moved(f) if f.get("key") else dict(f) for f in record.get("files", [])]
    run_logs = {stream: moved(entry) for stream, entry in record.get("logs", {}).get("run", {}).items()}
    return {"files": files, "outputs": record.get("outputs", {}), "logs": {"run": run_logs, "tasks": {}}}
