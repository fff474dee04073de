"""Galaxy tools run through Galaxy's Tool Request API.

Submit posts one tool request (``POST /api/jobs``) into the run's history and
returns at once: ``backend_run_id`` is the ``tool_request_id``. Galaxy's celery
worker then checks it, fetches URL inputs and expands it into jobs (one per
element when the tool is mapped over a collection). Sync reads the request's
state (``new`` → ``submitted``, or ``failed`` with Galaxy's message; read until it is
one of the last two, which never change), then the jobs it expanded into (``GET /api/jobs?tool_request_id=``), which become the
run's tasks; the run's state follows them (:func:`verdict`). A retried submit
finds the request already in the run's history instead of posting another.
Cancel stops every job of the request, and a later sync stops any job the
request expands into after that.

The tool's parameter schema (``parameter_request_schema``) is cached per tool
version; "latest" is resolved to a version for ``VERSION_CACHE_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flowdeck.backends.galaxy.state import ACTIVE_JOB_STATES, RunVerdict, run_state
from flowdeck.backends.galaxy.sync import InvocationReader
from flowdeck.backends.galaxy.sync import _failure as failure
from flowdeck.backends.galaxy.tool_inputs import Stager, galaxy_inputs, is_strict, request_body, tool_of
from flowdeck.domain.runs import CancelResult, RunHandle, RunSpec, Submitted, SyncReport
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import EngineError, EngineUnavailable, Problem, ValidationFailed

if TYPE_CHECKING:
    from flowdeck.backends.galaxy.client import GalaxyApi

KIND = "tool_request"
VERSION_CACHE_SECONDS = 300.0
MAX_PROBLEMS = 20
FINAL_REQUEST_STATES = frozenset({"submitted", "failed"})


class ToolRequests:
    """Tool requests of one Galaxy backend (thread-safe)."""

    def __init__(self, api: GalaxyApi) -> None:
        self.api = api
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._latest: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # --- schema
    def version(self, tool_id: str, pinned: str | None) -> str:
        """The pinned version, or the newest the server has (cached a while)."""
        if pinned:
            return pinned
        with self._lock:
            cached = self._latest.get(tool_id)
        if cached is not None and time.monotonic() - cached[1] < VERSION_CACHE_SECONDS:
            return cached[0]
        tool = self.api.get("read the tool", f"tools/{quote(tool_id, safe='')}")
        version = str(tool["version"])
        with self._lock:
            self._latest[tool_id] = (version, time.monotonic())
        return version

    def schema(self, tool_id: str, pinned: str | None) -> dict[str, Any]:
        """Galaxy's JSON Schema of the tool's request parameters, cached per tool version."""
        version = self.version(tool_id, pinned)
        with self._lock:
            cached = self._schemas.get((tool_id, version))
        if cached is not None:
            return cached
        found: dict[str, Any] = self.api.get(
            "read the tool's parameter schema",
            f"tools/{quote(tool_id, safe='')}/parameter_request_schema",
            {"tool_version": version},
        )
        with self._lock:
            self._schemas[(tool_id, version)] = found
        return found

    def validate(self, spec: RunSpec) -> None:
        """Strict requests are checked against Galaxy's schema before Galaxy sees them
        (ValidationFailed lists every problem); relaxed ones are Galaxy's to convert."""
        inputs = galaxy_inputs(spec)
        if is_strict(spec):
            self.check(*tool_of(spec), inputs)

    def check(self, tool_id: str, pinned: str | None, inputs: dict[str, Any]) -> None:
        """Galaxy-form ``inputs`` against the tool's schema (ValidationFailed)."""
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(self.schema(tool_id, pinned))
        problems = [
            Problem("/parameters" + "".join(f"/{p}" for p in error.absolute_path), error.message, str(error.validator))
            for error in sorted(validator.iter_errors(inputs), key=lambda e: list(map(str, e.absolute_path)))
        ][:MAX_PROBLEMS]
        if problems:
            shown = "; ".join(f"{p.pointer}: {p.message}" for p in problems[:3])
            raise ValidationFailed(f"invalid parameters for Galaxy tool {tool_id}: {shown}", problems)

    # --- submit
    def submit(self, spec: RunSpec, history_id: str, stage: Stager) -> Submitted:
        """Post the tool request, unless the run's history already holds one (a retry)."""
        existing = self.find(history_id)
        if existing is not None:
            return self._submitted(spec, history_id, str(existing["id"]), str(existing.get("state") or "new"))
        tool_id, _ = tool_of(spec)
        body = request_body(spec, history_id, galaxy_inputs(spec, stage))
        answer = self.api.post(f"submit a request for tool {tool_id}", "jobs", body)
        return self._submitted(spec, history_id, str(answer["tool_request_id"]), "new")

    def find(self, history_id: str) -> dict[str, Any] | None:
        """The first tool request of a history, if any."""
        found = self.api.get("list the history's tool requests", f"histories/{history_id}/tool_requests")
        return found[0] if found else None  # a run's history only ever gets one

    def _submitted(self, spec: RunSpec, history_id: str, request_id: str, state: str) -> Submitted:
        tool_id, pinned = tool_of(spec)
        data = {
            "kind": KIND,
            "galaxy_url": self.api.url,
            "history_id": history_id,
            "tool_id": tool_id,
            "tool_version": pinned,
            "tool_request_id": request_id,
            "tool_request_state": state,
        }
        return Submitted(backend_run_id=request_id, backend_data=data, state=State.INITIALIZING)

    # --- sync
    def report(self, handle: RunHandle) -> SyncReport:
        """One run's report (EngineError: the caller reports it as transient).

        One call per run and pass: the request's jobs, read first, because a request with
        jobs has been expanded; only a request without jobs yet has its own state read. A
        state learnt from jobs alone is confirmed by one read before the run may end, so a
        request Galaxy failed (or is still expanding) is never taken for a finished one."""
        request_id = str(handle.backend_run_id)
        data = dict(handle.backend_data)
        known = str(data.get("tool_request_state") or "new")
        if known in FINAL_REQUEST_STATES:  # those two never change
            jobs = self.jobs(request_id) if known == "submitted" else []
        else:
            jobs = self.jobs(request_id)
            if not jobs:
                known = str(self._read_request(request_id, data)["tool_request_state"])
        state = "submitted" if jobs and known == "new" else known
        counts: dict[str, int] = {}
        for job in jobs:
            counts[str(job.get("state"))] = counts.get(str(job.get("state")), 0) + 1
        if handle.state == State.CANCELING:
            self._cancel_jobs(jobs)
        fp = f"{state}|" + ",".join(f"{k}={v}" for k, v in sorted(counts.items()))
        if fp == data.get("fingerprint") and handle.state != State.CANCELING:
            return SyncReport(run_id=handle.run_id)
        result = verdict(state, counts, handle.state, data.get("tool_request_message"))
        if is_terminal(result.state) and state != known:
            return self._confirmed_end(handle, data, jobs, counts, result)
        data["fingerprint"] = fp
        return self._detailed(handle, data, jobs, result)

    def _confirmed_end(
        self,
        handle: RunHandle,
        data: dict[str, Any],
        jobs: list[dict[str, Any]],
        counts: dict[str, int],
        ending: RunVerdict,
    ) -> SyncReport:
        """The end of a run whose request state was learnt from its jobs: the request's own state is
        read (it decides, see :meth:`report`) while the end is collected (job details, outputs), not
        before it, so the confirmation adds no Galaxy round trip to the run's end."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="galaxy-confirm") as confirm:
            read = confirm.submit(self._read_request, str(handle.backend_run_id), dict(data))
            collected = self._detailed(handle, data, jobs, ending)
            stored = read.result()
        state = str(stored["tool_request_state"])
        data.update(stored, fingerprint=f"{state}|" + ",".join(f"{k}={v}" for k, v in sorted(counts.items())))
        result = verdict(state, counts, handle.state, data.get("tool_request_message"))
        if result == ending:
            return dataclasses.replace(collected, backend_data=data)
        return self._detailed(handle, data, jobs, result)  # Galaxy failed it, or is still expanding it

    def _read_request(self, request_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """The request's state, Galaxy's message, and the request as Galaxy stored it (a
        relaxed one after Galaxy's conversion to strict), into ``data``, which is returned."""
        stored = self.api.get("read the tool request", f"tool_requests/{request_id}")
        data.update(
            tool_request_state=str(stored.get("state")),
            galaxy_request=stored.get("request"),
            tool_request_message=stored.get("state_message"),
        )
        return data

    def _detailed(
        self, handle: RunHandle, data: dict[str, Any], jobs: list[dict[str, Any]], result: RunVerdict
    ) -> SyncReport:
        reader = InvocationReader(self.api)
        tasks = [reader._task(job, _labels(jobs), handle.workdir / "galaxy" / "jobs") for job in jobs]
        report: dict[str, Any] = {"state": result.state, "reason": result.reason, "tasks": tasks}
        if result.state == State.COMPLETE:
            logs = handle.workdir / "galaxy" / "jobs"
            outputs, files = reader._outputs(
                {"outputs": self._outputs(reader, jobs, logs)}, handle.workdir / "galaxy" / "outputs"
            )
            report.update(outputs=outputs, output_files=files, exit_code=0)
        elif result.state == State.EXECUTOR_ERROR:
            report.update(failure(tasks, result.reason))
        return SyncReport(run_id=handle.run_id, backend_data=data, progressed=True, **report)

    def jobs(self, request_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api.get(
            "list the tool request's jobs", "jobs", {"tool_request_id": request_id, "order_by": "create_time"}
        )
        return sorted(found, key=lambda job: str(job.get("create_time") or ""))

    def _outputs(self, reader: InvocationReader, jobs: list[dict[str, Any]], logs: Path) -> dict[str, Any]:
        """Output label -> dataset reference; ``name_2``, ``name_3``… for a mapped tool's later jobs.
        From the job details the tasks have just read (no second read of each job)."""
        outputs: dict[str, Any] = {}
        for index, job in enumerate(jobs, start=1):
            shown = reader._job_details(str(job["id"]), str(job.get("state")), logs)
            if "outputs" not in shown:  # details cached before they kept the outputs
                shown = self.api.call("read a job", self.api.gi.jobs.show_job, str(job["id"]))
            for name, ref in (shown.get("outputs") or {}).items():
                if ref.get("src") == "hda":
                    outputs[name if len(jobs) == 1 else f"{name}_{index}"] = ref
        return outputs

    # --- cancel
    def cancel(self, handle: RunHandle) -> CancelResult:
        request_id = str(handle.backend_run_id)
        try:
            stopped = self._cancel_jobs(self.jobs(request_id))
        except EngineUnavailable:
            raise
        except EngineError as exc:
            return CancelResult(confirmed=False, message=exc.detail)
        return CancelResult(
            confirmed=False, message=f"asked Galaxy to stop {stopped} job(s) of tool request {request_id}"
        )

    def _cancel_jobs(self, jobs: list[dict[str, Any]]) -> int:
        active = [job for job in jobs if job.get("state") in ACTIVE_JOB_STATES - {"deleting"}]
        for job in active:
            self.api.call("cancel a job", self.api.gi.jobs.cancel_job, str(job["id"]))
        return len(active)


def verdict(request_state: str, job_states: Mapping[str, int], run: State, message: Any) -> RunVerdict:
    """The run's state from its tool request's state and its jobs' state counts."""
    active = {state for state, count in job_states.items() if count} & ACTIVE_JOB_STATES
    if run == State.CANCELING:
        return RunVerdict(State.CANCELING) if active or request_state == "new" else RunVerdict(State.CANCELED)
    if request_state == "failed":
        return RunVerdict(State.EXECUTOR_ERROR, f"Galaxy failed the tool request: {_message(message)}")
    jobs = ", ".join(f"{count} {state}" for state, count in sorted(job_states.items())) or "no job yet"
    if request_state == "new" and not job_states:
        return RunVerdict(State.INITIALIZING, "Galaxy tool request is new")
    if request_state == "new":  # jobs of a request Galaxy is still expanding: more may come
        return RunVerdict(State.RUNNING, f"Galaxy is expanding the tool request; jobs: {jobs}")
    found = run_state("scheduled", job_states, all_steps_scheduled=bool(job_states))
    if found.state == State.RUNNING:
        return RunVerdict(State.RUNNING, f"Galaxy tool request is submitted; jobs: {jobs}")
    return found


def _message(message: Any) -> str:
    """Galaxy's ``state_message`` (``{"err_msg": …}``) as text."""
    if isinstance(message, dict) and message.get("err_msg"):
        return str(message["err_msg"])
    return str(message or "no message from Galaxy")


def _labels(jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Task names: the tool id, numbered per element when the request expanded into many jobs."""
    if len(jobs) == 1:
        return {str(jobs[0]["id"]): str(jobs[0].get("tool_id"))}
    return {str(job["id"]): f"{job.get('tool_id')} #{i}" for i, job in enumerate(jobs, start=1)}
