"""A run's results in storage: what the worker puts there when the run ends, and what the API serves.

When the worker's sync sees a run reach a terminal state, it puts the run's output files and its
logs (the run's stdout/stderr and every task's) into the configured storage under
``results/<run_id>/``, before the state change is written: the terminal state and the ``results``
record that lists them are one transaction, so an ended run always has its results recorded (a
worker that dies mid-put leaves the run active, and the next sync puts them again).

``runs.results`` (a JSON document, see docs/storage.md)::

    {"files":   [{"name", "key", "size", "checksum"}, ...],   # output files, by index
     "outputs": {name: {"value": <engine's own output>, "files": [index, ...]}},
     "logs":    {"run": {"stdout": {"key", "size", "checksum"}, ...},
                 "tasks": {<backend task id>: {"stdout": {...}, "stderr": {...}}}}}

While a run executes, the sync copies its logs that grew every ``live_log_seconds`` and writes a
record with ``"live": true`` and ``synced_at`` (no files, no outputs), which the one at the end
replaces. The API turns a record into download links (:func:`outputs_view`) that answer with a
pre-signed URL of the store; it never reads a worker's run folder for a run that has one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdeck.backends.checksums import file_checksum
from flowdeck.backends.local.run_files import inside
from flowdeck.db import tasks as task_rows
from flowdeck.domain.runs import RunRecord, TaskInfo
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import Conflict, NotFound
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.storage import Storage
from flowdeck.services.datasets.service import storage_of
from flowdeck.services.runs.attachments import run_folder
from flowdeck.settings import Settings

STREAMS = ("stdout", "stderr")
PARALLEL_PUTS = 8


def prefix(run_id: str) -> str:
    """Where a run's results live in storage."""
    return f"results/{run_id}/"


async def at_end(
    services: AppContext,
    pool: BlockingPool,
    run: RunRecord,
    reported: list[TaskInfo] | None,
) -> dict[str, Any]:
    """Put an ending run's results into storage (``run``: its row with the report's fields
    applied); the ``results`` record to write with its terminal state."""
    tasks = await _tasks(services, run.id, reported)
    return await pool.run(put, storage_of(services), services.runs_dir, run.id, run, tasks)


async def _tasks(services: AppContext, run_id: str, reported: list[TaskInfo] | None) -> list[Mapping[Any, Any]]:
    """The run's tasks as recorded, with what the engine just reported over them."""
    async with services.db.read() as conn:
        known = await task_rows.page(conn, run_id, None, 1_000_000)
    tasks: dict[str, Mapping[Any, Any]] = {str(t["backend_task_id"]): t for t in known}
    for info in reported or []:
        tasks[info.backend_task_id] = asdict(info)
    return list(tasks.values())


def live_due(settings: Settings, run: RunRecord, now: datetime) -> bool:
    """True when an executing run's logs are due to be copied to storage again."""
    if not settings.live_log_seconds or run.state is not State.RUNNING:
        return False
    if not run.stdout_path or "://" in run.stdout_path:  # no log in a run folder (demo, remote engines)
        return False
    record = run.results
    if record is None:
        return True
    synced = datetime.fromisoformat(record.get("synced_at", "1970-01-01T00:00:00+00:00"))
    return (now - synced).total_seconds() >= settings.live_log_seconds


async def live(
    services: AppContext, pool: BlockingPool, run: RunRecord, reported: list[TaskInfo] | None, now: datetime
) -> dict[str, Any]:
    """Copy a running run's logs to storage (those that grew): the ``results`` record to write
    meanwhile (``live``: no outputs yet; the record at the end replaces it)."""
    tasks = await _tasks(services, run.id, reported)
    before = (run.results or {}).get("logs", {})
    workdir = run_folder(services.runs_dir, run.id).work
    logs = await pool.run(put_logs, storage_of(services), workdir, run.id, run, tasks, before)
    return {"live": True, "synced_at": now.isoformat(), "files": [], "outputs": {}, "logs": logs}


def put(
    store: Storage, runs_dir: Path, run_id: str, run: RunRecord, tasks: Iterable[Mapping[Any, Any]]
) -> dict[str, Any]:
    """Put a run's output files and logs into ``store``; the ``results`` record (blocking I/O).

    ``run`` holds the run's final ``outputs``, ``output_files``, ``stdout_path`` and ``stderr_path``;
    ``tasks`` the tasks' ``backend_task_id``, ``stdout_path`` and ``stderr_path``."""
    workdir = run_folder(runs_dir, run_id).work
    puts = _Puts(store)
    files = [_output(puts, workdir, run_id, i, item) for i, item in enumerate(run.output_files or [])]
    logs = _logs(puts, workdir, run_id, run, tasks, {})
    puts.run()
    return {"files": files, "outputs": _by_name(run.outputs or {}, files, workdir), "logs": logs}


def put_logs(
    store: Storage,
    workdir: Path,
    run_id: str,
    run: RunRecord,
    tasks: Iterable[Mapping[Any, Any]],
    before: Mapping[str, Any],
) -> dict[str, Any]:
    """Put the run's and its tasks' logs; a log whose size is the one in ``before`` (the previous
    record's ``logs``) is not put again."""
    puts = _Puts(store)
    logs = _logs(puts, workdir, run_id, run, tasks, before)
    puts.run()
    return logs


class _Puts:
    """Puts queued while a record is built, then made several at a time (a put to S3 is a round
    trip or more: one after the other, a run's dozens of logs and outputs would add up)."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.queued: list[tuple[dict[str, Any], Path, str | None]] = []

    def add(self, entry: dict[str, Any], path: Path, checksum: str | None = None) -> dict[str, Any]:
        """``entry`` (holding its ``key``) gets its ``size`` and ``checksum`` when :meth:`run` puts it."""
        self.queued.append((entry, path, checksum))
        return entry

    def run(self) -> None:
        if not self.queued:
            return
        with ThreadPoolExecutor(min(PARALLEL_PUTS, len(self.queued)), thread_name_prefix="flowdeck-put") as pool:
            list(pool.map(lambda job: self._put(*job), self.queued))

    def _put(self, entry: dict[str, Any], path: Path, checksum: str | None) -> None:
        with path.open("rb") as stream:
            size = self.store.put_stream(entry["key"], stream)
        entry.update(size=size, checksum=checksum or file_checksum(path))


def _logs(
    puts: _Puts,
    workdir: Path,
    run_id: str,
    run: RunRecord,
    tasks: Iterable[Mapping[Any, Any]],
    before: Mapping[str, Any],
) -> dict[str, Any]:
    logs: dict[str, Any] = {
        "run": _stream_logs(puts, workdir, f"{prefix(run_id)}logs/run/", _paths(run), before.get("run", {})),
        "tasks": {},
    }
    for task in tasks:
        task_id = str(task["backend_task_id"])
        # Keyed by a digest of the engine's task id: stable across puts, whatever characters it has.
        key_prefix = f"{prefix(run_id)}logs/tasks/{hashlib.sha256(task_id.encode()).hexdigest()[:20]}/"
        stored = _stream_logs(puts, workdir, key_prefix, task, before.get("tasks", {}).get(task_id, {}))
        if stored:
            logs["tasks"][task_id] = stored
    return logs


def _paths(run: RunRecord) -> dict[str, str | None]:
    """A run's log paths, as a task row names them."""
    return {"stdout_path": run.stdout_path, "stderr_path": run.stderr_path}


def _local(workdir: Path, location: str | None) -> Path | None:
    """The file a location names, when it lies inside the run folder (absolute or relative)."""
    if not location or ("://" in location and not location.startswith("file://")):
        return None
    path = Path(location.removeprefix("file://"))
    real = inside(path if path.is_absolute() else workdir / path, workdir.parent)
    return real if real is not None and real.is_file() else None


def _output(puts: _Puts, workdir: Path, run_id: str, index: int, item: Mapping[Any, Any]) -> dict[str, Any]:
    name = str(item.get("name") or item.get("location") or index)
    path = _local(workdir, item.get("location"))
    if path is None:  # a file the engine keeps elsewhere (Galaxy, HealthOmics): its link as reported
        return {
            "name": name,
            "location": item.get("location"),
            "size": item.get("size"),
            "checksum": item.get("checksum"),
        }
    entry = {"name": name, "key": f"{prefix(run_id)}outputs/{index}/{path.name}"}
    return puts.add(entry, path, item.get("checksum"))


def _stream_logs(
    puts: _Puts, workdir: Path, key_prefix: str, row: Mapping[Any, Any], before: Mapping[str, Any]
) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for stream in STREAMS:
        path = _local(workdir, row.get(f"{stream}_path"))
        if path is None:
            continue
        previous = before.get(stream)
        unchanged = previous is not None and previous["size"] == path.stat().st_size
        stored[stream] = previous if unchanged else puts.add({"key": key_prefix + stream}, path)
    return stored


def _by_name(outputs: Mapping[Any, Any], files: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """Each output name with the engine's value and the indexes of the files it names."""
    root = workdir.resolve()
    return {name: {"value": value, "files": _named_files(value, files, root)} for name, value in outputs.items()}


def _named_files(value: Any, files: list[dict[str, Any]], root: Path) -> list[int]:
    named = set()
    for raw in _strings(value):
        path = Path(raw.removeprefix("file://"))
        full = Path(os.path.normpath(path if path.is_absolute() else root / path))
        if full.is_relative_to(root):
            named.add(str(full.relative_to(root)))
    return [i for i, f in enumerate(files) if f["name"] in named or any(f["name"].startswith(n + "/") for n in named)]


def _strings(value: Any) -> Iterator[str]:
    """Every string in an output value: CWL File paths, WDL paths, Snakemake relative paths."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _entries(results: Mapping[Any, Any] | None) -> list[Mapping[str, Any]]:
    """Every stored object a results record names: its output files, then its run and task logs."""
    if not results:
        return []
    found = [f for f in results.get("files", []) if f.get("key")]
    logs = results.get("logs", {})
    for stored in [logs.get("run", {}), *logs.get("tasks", {}).values()]:
        found += list(stored.values())
    return found


def keys(results: Mapping[Any, Any] | None) -> list[str]:
    """Every storage key a results record names."""
    return [entry["key"] for entry in _entries(results)]


def stored_bytes(results: Mapping[Any, Any] | None) -> int:
    """How many bytes a results record holds in storage."""
    return sum(int(entry.get("size") or 0) for entry in _entries(results))


def recorded(record: dict[str, Any]) -> dict[str, Any]:
    """The run fields that record ``record``: it and the bytes it holds in storage (the column the
    triggers of migration 0012 count per group)."""
    return {"results": record, "stored_bytes": stored_bytes(record)}


def output_key(run: RunRecord, index: int) -> str:
    """The storage key of output ``index`` of an ended run; NotFound when there is none."""
    files = (run.results or {}).get("files", [])
    if not 0 <= index < len(files) or not files[index].get("key"):
        raise NotFound(f"run {run.id} has no stored output {index}")
    return str(files[index]["key"])


def log_key(run: RunRecord, stream: str, backend_task_id: str | None = None) -> str | None:
    """The storage key of a run's (or a task's) log, None when the run has no results record yet."""
    results = run.results
    if results is None:
        return None
    logs = results.get("logs", {})
    stored = logs.get("run", {}) if backend_task_id is None else logs.get("tasks", {}).get(backend_task_id, {})
    if stream not in stored:
        raise NotFound(f"this file is not available from flowdeck: run {run.id} stored no {stream}")
    return str(stored[stream]["key"])


def outputs_view(run: RunRecord, run_url: str) -> dict[str, Any]:
    """``RunLog.outputs``: each output name → its files' links, sizes and checksums, with the
    engine's own value under ``value``; a single-file output also carries its file's fields at
    the top (docs/storage.md). A run with no results record shows the engine's outputs as they are."""
    results = run.results
    if results is None or results.get("live"):
        return dict(run.outputs or {})
    links = [_file_view(f, i, run_url) for i, f in enumerate(results.get("files", []))]
    view: dict[str, Any] = {}
    for name, entry in results.get("outputs", {}).items():
        files = [links[i] for i in entry["files"]]
        view[name] = {**(files[0] if len(files) == 1 else {}), "files": files, "value": entry["value"]}
    return view


def files_view(run: RunRecord, run_url: str) -> list[dict[str, Any]]:
    """Every stored output file with its link."""
    results = run.results or {}
    return [_file_view(f, i, run_url) for i, f in enumerate(results.get("files", []))]


def _file_view(item: Mapping[Any, Any], index: int, run_url: str) -> dict[str, Any]:
    # A file flowdeck did not store (Galaxy's large datasets, HealthOmics' S3 objects) has no
    # flowdeck link: its location is the engine's, shown as such.
    url, location = (f"{run_url}/outputs/{index}", None) if item.get("key") else (None, item.get("location"))
    return {
        k: v
        for k, v in (
            ("name", item["name"]),
            ("url", url),
            ("location", location),
            ("size", item.get("size")),
            ("checksum", item.get("checksum")),
        )
        if v is not None
    }


def archive(store: Storage, run: RunRecord) -> Path:
    """A zip of every stored output file of an ended run, named as the engine named them (blocking)."""
    if not is_terminal(run.state):
        raise Conflict(f"run {run.id} has not ended: its outputs are archived when it has")
    if run.results is None:
        raise Conflict(f"run {run.id} ended before flowdeck kept results in storage: no archive")
    fd, name = tempfile.mkstemp(prefix=f"flowdeck-{run.id}-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            for item in run.results.get("files", []):
                if item.get("key"):
                    with store.open(item["key"]) as source, out.open(f"{run.id}/{item['name']}", "w") as target:
                        while chunk := source.read(1 << 20):
                            target.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def link(services: AppContext, key: str, base: str) -> str:
    """A pre-signed GET URL of a stored object (S3's own, or flowdeck's signed local URL)."""
    return storage_of(services).presign(key, "GET", base)


async def archive_of(services: AppContext, run: RunRecord) -> Path:
    """:func:`archive` off the event loop."""
    return await asyncio.to_thread(archive, storage_of(services), run)
