"""Learning the state of Galaxy invocations, many at once where Galaxy allows it.

Batched (``galaxy_batch_listing``, the default), one sync pass costs, for N runs:
the listing of the user's ``new``/``ready`` invocations (GET /api/invocations, a
page per 100) and one job-state summary per 150 runs (GET
/api/histories/{id}/jobs_summary?ids=…, subworkflows included).

Polled one by one (``galaxy_batch_listing`` off), a run costs one call, its
invocation's job summary (GET /api/invocations/{id}/jobs_summary), plus a read
of the invocation itself while Galaxy is still scheduling it: the summary's
``populated_state`` cannot tell ``new`` from ``ready`` or ``cancelling``, and
past that point the summary says everything the run's state depends on.

Either way a *fingerprint* per run is built; only runs whose fingerprint changed
since the last pass are read in detail (show_invocation, the jobs, logs and
outputs), in parallel with a bound. A run whose invocation and jobs did not move
costs nothing beyond its poll or its share of the batched calls.

Details write job stdout/stderr to ``<workdir>/galaxy/jobs/<job id>.stdout|.stderr``
(fetched once, when the job has finished) and download outputs up to
``MAX_DOWNLOAD_BYTES`` into ``<workdir>/galaxy/outputs/``: the API serves those
files without a Galaxy key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowdeck.backends.checksums import file_checksum
from flowdeck.backends.galaxy.client import GalaxyApi
from flowdeck.backends.galaxy.state import (
    ACTIVE_JOB_STATES,
    fingerprint,
    parse_time,
    run_state,
    task_state,
)
from flowdeck.domain.runs import OutputFile, RunHandle, SyncReport, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import EngineError

MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
# a job's logs are fetched once, when it can no longer change (a paused job may be resumed)
FINAL_JOB_STATES = frozenset({"ok", "skipped", "error", "failed", "deleted", "deleted_new", "stopped"})
LOG_TAIL = 2000
UNKNOWN_STATUS = frozenset({400, 404})  # an undecodable or unknown invocation id
# invocation states a job summary cannot tell apart (all have populated_state "new")
SCHEDULING_STATES = frozenset({"new", "ready", "requires_materialization", "cancelling"})
# what Galaxy's listing of non-terminal invocations shows; any other state is "past ready"
LISTED_STATES = frozenset({"new", "ready"})
PAST_READY = "past-ready"


def listed_state(state: str) -> str:
    """An invocation's state as the fingerprint keeps it, whichever way it was learnt."""
    return state if state in LISTED_STATES else PAST_READY


def current_fingerprint(
    invocation_id: str,
    listed: Mapping[str, str],
    listing_complete: bool,
    summary: Mapping[str, Any] | None,
) -> str | None:
    """The run's fingerprint from the batched calls, or None when they said nothing."""
    if summary is None:
        return None
    listed_state = listed.get(invocation_id) or (PAST_READY if listing_complete else None)
    return fingerprint(listed_state, summary.get("populated_state"), summary.get("states") or {})


class InvocationReader:
    """Reads one invocation in detail and turns it into a :class:`SyncReport`."""

    def __init__(self, api: GalaxyApi) -> None:
        self.api = api
        self.gi = api.gi

    def poll(self, handle: RunHandle) -> SyncReport:
        """One run on its own: its job summary (and its invocation while Galaxy is still
        scheduling it); a detailed read only when that changed since the last pass."""
        invocation_id = str(handle.backend_run_id)
        try:
            summary = self.api.call(
                "read the invocation's jobs", self.gi.invocations.get_invocation_summary, invocation_id
            )
        except EngineError as exc:
            if exc.extra.get("galaxy_status") not in UNKNOWN_STATUS:
                raise
            return self.report(handle, None, None)  # its invocation read says whether Galaxy knows it
        invocation: dict[str, Any] | None = None
        state = PAST_READY
        stored = handle.backend_data.get("invocation_state")
        if stored is None or stored in SCHEDULING_STATES:
            found = self._show(handle)
            if isinstance(found, SyncReport):
                return found
            invocation = found
            state = listed_state(str(invocation["state"]))
        fp = fingerprint(state, summary.get("populated_state"), summary.get("states") or {})
        if fp == handle.backend_data.get("fingerprint"):
            return SyncReport(run_id=handle.run_id)
        return self.report(handle, summary, fp, invocation)

    def _show(self, handle: RunHandle) -> dict[str, Any] | SyncReport:
        """The invocation, or the report of a run whose invocation Galaxy does not know."""
        try:
            found: dict[str, Any] = self.api.call(
                "read the invocation", self.gi.invocations.show_invocation, str(handle.backend_run_id)
            )
        except EngineError as exc:
            if exc.extra.get("galaxy_status") not in UNKNOWN_STATUS:
                raise
            # Galaxy answered, and it does not know this invocation: nothing will ever move it.
            return SyncReport(run_id=handle.run_id, state=State.SYSTEM_ERROR, reason=exc.detail)
        return found

    def report(
        self,
        handle: RunHandle,
        summary: Mapping[str, Any] | None,
        fp: str | None,
        invocation: dict[str, Any] | None = None,
    ) -> SyncReport:
        invocation_id = str(handle.backend_run_id)
        if invocation is None:
            found = self._show(handle)
            if isinstance(found, SyncReport):
                return found
            invocation = found
        if summary is None:
            summary = self.api.call(
                "read the invocation's jobs", self.gi.invocations.get_invocation_summary, invocation_id
            )
        if fp is None:  # the batched calls left this run out: what was just read tells
            fp = fingerprint(
                listed_state(str(invocation["state"])), summary.get("populated_state"), summary.get("states") or {}
            )
            if fp == handle.backend_data.get("fingerprint"):
                return SyncReport(run_id=handle.run_id)
        job_states: dict[str, int] = dict(summary.get("states") or {})
        verdict = run_state(str(invocation["state"]), job_states, summary.get("populated_state") == "ok")
        labels, invocations = self._walk(invocation)
        jobs = self._jobs(invocations)
        logs_dir = handle.workdir / "galaxy" / "jobs"
        tasks = [self._task(job, labels, logs_dir) for job in jobs]
        data = {**handle.backend_data, "invocation_state": invocation["state"], "fingerprint": fp}
        report: dict[str, Any] = {
            "run_id": handle.run_id,
            "state": verdict.state,
            "reason": verdict.reason,
            "tasks": tasks,
            "backend_data": data,
            "progressed": True,
            "system_logs": _messages(invocation),
        }
        if verdict.state == State.EXECUTOR_ERROR:
            report.update(_failure(tasks, verdict.reason))
        if verdict.state == State.COMPLETE:
            outputs, files = self._outputs(invocation, handle.workdir / "galaxy" / "outputs")
            report.update(outputs=outputs, output_files=files, exit_code=0)
        return SyncReport(**report)

    def _walk(self, invocation: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        """Step labels by job id, and the ids of the invocation and all its subworkflow invocations."""
        labels: dict[str, str] = {}
        ids = [str(invocation["id"])]
        for step in invocation.get("steps") or []:
            label = step.get("workflow_step_label") or f"step {step.get('order_index')}"
            if step.get("job_id"):
                labels[str(step["job_id"])] = str(label)
            sub_id = step.get("subworkflow_invocation_id")
            if sub_id:
                sub = self.api.call("read a subworkflow invocation", self.gi.invocations.show_invocation, sub_id)
                sub_labels, sub_ids = self._walk(sub)
                labels.update({job: f"{label}/{name}" for job, name in sub_labels.items()})
                ids.extend(sub_ids)
        return labels, ids

    def _jobs(self, invocation_ids: list[str]) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for invocation_id in invocation_ids:
            for job in self.api.call(
                "list the invocation's jobs",
                self.gi.jobs.get_jobs,
                invocation_id=invocation_id,
                order_by="create_time",
            ):
                seen.setdefault(str(job["id"]), job)
        return sorted(seen.values(), key=lambda job: str(job.get("create_time") or ""))

    def _task(self, job: dict[str, Any], labels: Mapping[str, str], logs_dir: Path) -> TaskInfo:
        job_id = str(job["id"])
        state = str(job.get("state"))
        details = self._job_details(job_id, state, logs_dir)
        finished = state not in ACTIVE_JOB_STATES
        name = labels.get(job_id) or str(job.get("tool_id") or job_id)
        return TaskInfo(
            backend_task_id=job_id,
            # Galaxy's job cache: a new job holding the outputs of an equal finished one
            name=f"{name} (re-used)" if details.get("copied_from_job_id") else name,
            state=task_state(state),
            start_time=parse_time(job.get("create_time")),
            end_time=parse_time(job.get("update_time")) if finished else None,
            exit_code=details.get("exit_code"),
            stdout_path=details.get("stdout_path"),
            stderr_path=details.get("stderr_path"),
            system_logs=[f"Galaxy job {job_id} ({job.get('tool_id')}): {state}"]
            + ([str(details["info"])] if details.get("info") else []),
        )

    def _job_details(self, job_id: str, state: str, logs_dir: Path) -> dict[str, Any]:
        """Exit code and log files of a finished job, fetched from Galaxy once."""
        if state not in FINAL_JOB_STATES:
            return {}
        meta = logs_dir / f"{job_id}.json"
        if meta.exists():
            cached: dict[str, Any] = json.loads(meta.read_text())
            return cached
        job = self.api.call("read a job", self.gi.jobs.show_job, job_id, full_details=True)
        logs_dir.mkdir(parents=True, exist_ok=True)
        messages = [str(m.get("desc", m)) if isinstance(m, dict) else str(m) for m in job.get("job_messages") or []]
        if state in ("error", "failed") and not (job.get("stderr") or messages):
            messages = self._output_info(job)
        info = "; ".join(filter(None, [str(job.get("info") or ""), *messages]))
        details: dict[str, Any] = {
            "exit_code": job.get("exit_code"),
            "info": info or None,
            "copied_from_job_id": job.get("copied_from_job_id"),
            # kept so a tool request's outputs need no second read of the job
            "outputs": job.get("outputs") or {},
        }
        for stream in ("stdout", "stderr"):
            path = logs_dir / f"{job_id}.{stream}"
            path.write_text(str(job.get(stream) or job.get(f"tool_{stream}") or ""))
            details[f"{stream}_path"] = str(path)
        meta.write_text(json.dumps(details))
        return details

    def _output_info(self, job: Mapping[str, Any]) -> list[str]:
        """Why a job without stderr failed: Galaxy tells its own failures (a job killed by a
        restart, a bad parameter) only in the outputs' ``misc_info``; the job's ``info`` is
        for admins."""
        for output in (job.get("outputs") or {}).values():
            if output.get("src") == "hda":
                dataset = self.api.call("read a job output", self.gi.datasets.show_dataset, output["id"])
                if dataset.get("misc_info"):
                    return [str(dataset["misc_info"])]
        return []

    def _outputs(self, invocation: dict[str, Any], out_dir: Path) -> tuple[dict[str, Any], list[OutputFile]]:
        outputs: dict[str, Any] = {}
        files: list[OutputFile] = []
        for label, ref in (invocation.get("outputs") or {}).items():
            dataset = self.api.call("read an output dataset", self.gi.datasets.show_dataset, ref["id"])
            extension = str(dataset.get("extension") or dataset.get("file_ext") or "data")
            size = dataset.get("file_size")
            url = f"{self.api.url}/api/datasets/{ref['id']}/display?to_ext={extension}"
            location, checksum = url, None
            if isinstance(size, int) and size <= MAX_DOWNLOAD_BYTES:
                path = self._download(ref["id"], out_dir / f"{label}.{extension}")
                location, checksum = str(path), file_checksum(path)
            outputs[label] = {
                "class": "File",
                "location": location,
                "galaxy_url": url,
                "galaxy_dataset_id": ref["id"],
                "name": dataset.get("name"),
                "extension": extension,
                "size": size,
            }
            files.append(
                OutputFile(
                    name=str(label),
                    location=location,
                    size=size if isinstance(size, int) else None,
                    checksum=checksum,
                )
            )
        for label, ref in (invocation.get("output_collections") or {}).items():
            outputs[label] = {
                "class": "Directory",
                "galaxy_collection_id": ref["id"],
                "galaxy_url": f"{self.api.url}/api/dataset_collections/{ref['id']}/download",
            }
        return outputs, files

    def _download(self, dataset_id: str, target: Path) -> Path:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            self.api.call(
                "download an output",
                self.gi.datasets.download_dataset,
                dataset_id,
                file_path=str(partial),
                use_default_filename=False,
            )
            partial.replace(target)
        return target


def _messages(invocation: Mapping[str, Any]) -> list[str]:
    return [json.dumps(message, sort_keys=True) for message in invocation.get("messages") or []]


def _failure(tasks: list[TaskInfo], fallback: str | None) -> dict[str, Any]:
    """The run-level reason, stderr and exit code from its first failed task."""
    failed = [t for t in tasks if t.state == State.EXECUTOR_ERROR] or [t for t in tasks if t.state == State.PAUSED]
    if not failed:
        return {"reason": fallback, "exit_code": 1}
    task = failed[0]
    tail = ""
    if task.stderr_path and Path(task.stderr_path).exists():
        tail = Path(task.stderr_path).read_text(errors="replace").strip()[-LOG_TAIL:]
    if task.state == State.PAUSED:
        reason = f"step {task.name} is paused: one of its inputs failed"
    else:
        detail = "; ".join(filter(None, [tail, *task.system_logs[1:]])) or f"exit code {task.exit_code}"
        reason = f"step {task.name} failed: {detail}"
    return {"reason": reason, "stderr_path": task.stderr_path, "exit_code": task.exit_code or 1}
