"""The ``galaxy`` backend: workflows stored in a Galaxy server, run through BioBlend.

A run names a Galaxy workflow (by name or id, see :mod:`inputs`). Submit
puts each run in its own history, named ``flowdeck run <run id>`` and tagged
``flowdeck_run:<run id>``, stages the inputs into it and invokes the workflow
there. A retried submit (after a crash between invoking and recording) finds
that history and its invocation and returns it instead of invoking again.

``backend_run_id`` is the invocation id; ``backend_data`` holds ``galaxy_url``,
``history_id``, ``workflow_id``, ``workflow_name``, ``invocation_id``, and, after
syncs, ``invocation_state`` and ``fingerprint`` (what the last detailed read saw).

Sync is batched, or polls each invocation when ``galaxy_batch_listing`` is off
(see :mod:`sync`). Its Galaxy calls run on one thread pool per backend of
``sync_concurrency`` threads, whatever the number of runs or of sync calls in
flight, so that bound is the most requests Galaxy sees from a worker's sync. Any
Galaxy failure during sync is a transient report that never changes a run's
state. Cancel asks Galaxy to cancel the invocation; a later sync confirms it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowdeck.backends.base import Backend
from flowdeck.backends.galaxy.client import GalaxyApi, chunks
from flowdeck.backends.galaxy.inputs import (
    FETCHED_SCHEMES,
    InvocationPlan,
    WorkflowInfo,
    local_path,
    looks_like_id,
    plan_invocation,
    validate_spec,
    workflow_target,
)
from flowdeck.backends.galaxy.sync import InvocationReader, current_fingerprint
from flowdeck.backends.galaxy.tool_inputs import is_tool_run
from flowdeck.backends.galaxy.tool_requests import KIND as TOOL_REQUEST
from flowdeck.backends.galaxy.tool_requests import ToolRequests
from flowdeck.domain.runs import CancelResult, RunHandle, RunSpec, Submitted, SyncReport
from flowdeck.domain.states import State
from flowdeck.errors import ConfigurationError, EngineError, EngineUnavailable, InvalidInput

if TYPE_CHECKING:
    from flowdeck.settings import Settings

log = logging.getLogger(__name__)
HISTORY_TAG = "flowdeck_run"
UNAVAILABLE_RETRY_SECONDS = 10.0
WORKFLOW_CACHE_SECONDS = 300.0


def history_name(run_id: str) -> str:
    """The name of a run's history; the key a retried submit looks it up by."""
    return f"flowdeck run {run_id}"


class GalaxyBackend(Backend):
    """Galaxy through BioBlend."""

    name = "galaxy"
    # The workflow is stored in Galaxy already; the version names its format there.
    # A Galaxy tool (galaxy://tool/<id>) is the version "tool".
    workflow_types = {"GALAXY": ["gxformat2", "ga", "tool"]}
    parallel_sync = True
    # "true": Galaxy may re-use an equal finished job instead of running it again
    engine_parameter_allowlist = frozenset({"use_cached_jobs"})
    # a resumed rerun is invoked with Galaxy's job re-use, on the old run's input datasets
    resumes = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._api: GalaxyApi | None = None
        self._tools: ToolRequests | None = None
        self._sync_pool: ThreadPoolExecutor | None = None
        self._workflows: dict[str, tuple[WorkflowInfo, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("bioblend") is not None

    @classmethod
    def missing_configuration(cls, settings: Settings) -> str | None:
        if not settings.galaxy_url or settings.galaxy_api_key is None:
            return "FLOWDECK_GALAXY_URL and FLOWDECK_GALAXY_API_KEY are not set"
        return None

    @property
    def api(self) -> GalaxyApi:
        with self._lock:
            if self._api is None:
                url, key = self.settings.galaxy_url, self.settings.galaxy_api_key
                if not url or key is None:
                    raise ConfigurationError("the galaxy backend needs FLOWDECK_GALAXY_URL and FLOWDECK_GALAXY_API_KEY")
                # sync's threads, and room for submits and cancels beside them
                connections = self.settings.sync_concurrency + 4
                self._api = GalaxyApi(url, key.get_secret_value(), self.settings.galaxy_timeout_seconds, connections)
            return self._api

    @property
    def tools(self) -> ToolRequests:
        """Galaxy tools run through the Tool Request API (see :mod:`tool_requests`)."""
        api = self.api
        with self._lock:
            if self._tools is None:
                self._tools = ToolRequests(api)
            return self._tools

    def tool_schema(self, tool_id: str, version: str | None) -> dict[str, Any]:
        """Galaxy's parameter_request_schema of a tool (None: its newest version), cached."""
        return self.tools.schema(tool_id, version)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(
                    max_workers=self.settings.sync_concurrency, thread_name_prefix="galaxy-sync"
                )
            return self._sync_pool

    def engine_version(self) -> str:
        version = self.api.get("read its version", "version")
        return f"Galaxy {version.get('version_major')}.{version.get('version_minor')}"

    def workflow_document(self, handle: RunHandle) -> tuple[str, bytes] | None:
        """The run's workflow as Galaxy exports it (``.ga``, Galaxy's native JSON format), for its
        RO-Crate; None for a tool run (a tool, not a workflow) or a run never submitted."""
        workflow_id = handle.backend_data.get("workflow_id")
        if handle.backend_data.get("kind") == TOOL_REQUEST or not workflow_id:
            return None
        exported = self.api.get("export the workflow", f"workflows/{workflow_id}/download", {"format": "json-download"})
        name = str(handle.backend_data.get("workflow_name") or exported.get("name") or workflow_id)
        return f"{name}.ga", json.dumps(exported, indent=2, sort_keys=True).encode()

    def fast_sync(self) -> tuple[float, float] | None:
        """A young Galaxy run is checked often: a tool request or a short workflow ends within
        ``galaxy_fast_sync_seconds``, and its end is then seen within a fraction of a second."""
        window = self.settings.galaxy_fast_sync_seconds
        return (window, self.settings.galaxy_fast_sync_interval) if window > 0 else None

    def engine_parameter_defaults(self) -> dict[str, tuple[str, str]]:
        return {"use_cached_jobs": ("boolean", "false")}

    def validate(self, spec: RunSpec) -> None:
        super().validate(spec)
        cached = spec.engine_parameters.get("use_cached_jobs")
        if cached not in (None, "true", "false"):
            raise InvalidInput(f"workflow_engine_parameters.use_cached_jobs must be 'true' or 'false', not {cached!r}")
        if not is_tool_run(spec):
            validate_spec(spec)
            return
        try:
            self.tools.validate(spec)
        except EngineUnavailable as exc:
            # Galaxy checks a strict request itself too: a slow Galaxy must not refuse the run.
            log.warning("tool request of run %s not checked before submit: %s", spec.run_id, exc.detail)

    # --- submit
    def submit(self, spec: RunSpec) -> Submitted:
        if is_tool_run(spec):
            return self._submit_tool(spec)
        target = workflow_target(spec)
        api = self.api
        history_id = api.find_history(history_name(spec.run_id))
        if history_id is not None:
            existing = api.call(
                "list the run history's invocations", api.gi.invocations.get_invocations, history_id=history_id
            )
            if existing:
                first = min(existing, key=lambda inv: str(inv.get("create_time") or ""))
                return self._submitted(first, history_id, None)
        else:
            history_id = self._new_history(spec.run_id)
        workflow = self.workflow(target)
        try:
            return self._invoke(spec, workflow, history_id)
        except EngineUnavailable:
            raise
        except EngineError as exc:
            if exc.extra.get("galaxy_status") not in (400, 403, 404):
                raise
            # the cached id may name a workflow deleted or replaced since: look again, once
            self.forget_workflow(target)
            fresh = self.workflow(target)
            if fresh.id == workflow.id:
                raise
            return self._invoke(spec, fresh, history_id)

    def _submit_tool(self, spec: RunSpec) -> Submitted:
        history_id = self.api.find_history(history_name(spec.run_id)) or self._new_history(spec.run_id)
        return self.tools.submit(spec, history_id, lambda ref: self._upload(ref, history_id, "input"))

    def _invoke(self, spec: RunSpec, workflow: WorkflowInfo, history_id: str) -> Submitted:
        api = self.api
        plan = plan_invocation(spec, workflow)
        inputs = {**plan.values, **self._stage(plan, history_id, self._resumed_inputs(spec))}
        invocation = api.call(
            f"invoke workflow {workflow.name!r}",
            api.gi.workflows.invoke_workflow,
            workflow.id,
            inputs=inputs,
            params=plan.step_parameters or None,
            history_id=history_id,
            inputs_by="name",
            require_exact_tool_versions=False,
            # fill tool parameters a stored workflow leaves unset with their defaults
            allow_tool_state_corrections=True,
            use_cached_job=uses_cached_jobs(spec),
        )
        return self._submitted(invocation, history_id, workflow)

    def _submitted(self, invocation: dict[str, Any], history_id: str, workflow: WorkflowInfo | None) -> Submitted:
        invocation_id = str(invocation["id"])
        data = {
            "galaxy_url": self.api.url,
            "history_id": history_id,
            "invocation_id": invocation_id,
            "workflow_id": workflow.id if workflow else invocation.get("workflow_id"),
            "workflow_name": workflow.name if workflow else None,
            "invocation_state": invocation.get("state"),
        }
        return Submitted(backend_run_id=invocation_id, backend_data=data, state=State.INITIALIZING)

    def _new_history(self, run_id: str) -> str:
        api = self.api
        history = api.call("create the run's history", api.gi.histories.create_history, history_name(run_id))
        api.call("tag the run's history", api.gi.histories.create_history_tag, history["id"], f"{HISTORY_TAG}:{run_id}")
        return str(history["id"])

    def workflow(self, target: str) -> WorkflowInfo:
        """A workflow by name or id: cached for ``WORKFLOW_CACHE_SECONDS`` (Galaxy still runs
        a deleted workflow, so a replaced one is only noticed by looking again), looked up
        in Galaxy on a miss."""
        with self._lock:
            cached = self._workflows.get(target)
        if cached is not None and time.monotonic() - cached[1] < WORKFLOW_CACHE_SECONDS:
            return cached[0]
        found = self._lookup_workflow(target)
        with self._lock:
            self._workflows[target] = (found, time.monotonic())
        return found

    def forget_workflow(self, target: str) -> None:
        """Drop a cached name → id (the workflow was deleted or replaced in Galaxy)."""
        with self._lock:
            self._workflows.pop(target, None)

    def _lookup_workflow(self, target: str) -> WorkflowInfo:
        api = self.api
        if looks_like_id(target):
            try:
                return _workflow_info(api.call("read the workflow", api.gi.workflows.show_workflow, target))
            except EngineUnavailable:
                raise
            except EngineError:
                pass  # not an id after all: try it as a name
        matches = api.find_workflows(target)
        if not matches:
            raise EngineError(f"Galaxy has no workflow named {target!r} that flowdeck's user can run")
        # Galaxy allows several workflows of one name: the most recently updated wins.
        workflow_id = str(max(matches, key=lambda wf: str(wf.get("update_time") or ""))["id"])
        return _workflow_info(api.call("read the workflow", api.gi.workflows.show_workflow, workflow_id))

    def _resumed_inputs(self, spec: RunSpec) -> dict[str, str]:
        """Label -> dataset id of the inputs of the run a resumed rerun resumes: Galaxy re-uses
        a job only for the very same input datasets, and a new upload is a new dataset."""
        if spec.resume_from is None:
            return {}
        invocation_id = self._find_invocation(spec.resume_from.parent.name)  # runs/<old run id>/work
        if invocation_id is None:
            return {}
        api = self.api
        old = api.call("read the resumed invocation", api.gi.invocations.show_invocation, invocation_id)
        inputs = (old.get("inputs") or {}).values()
        return {str(i["label"]): str(i["id"]) for i in inputs if i.get("label") and i.get("src") == "hda"}

    def _stage(self, plan: InvocationPlan, history_id: str, reused: dict[str, str]) -> dict[str, Any]:
        """Put each dataset into the run's history (a resumed run takes its old run's);
        returns label -> Galaxy input."""
        staged: dict[str, Any] = {}
        for label, ref in plan.datasets.items():
            if label in reused:
                staged[label] = {"src": "hda", "id": reused[label]}
            elif ref.get("galaxy_dataset_id"):
                staged[label] = {"src": "hda", "id": str(ref["galaxy_dataset_id"])}
            else:
                staged[label] = {"src": "hda", "id": self._upload(ref, history_id, label)}
        return staged

    def _upload(self, ref: dict[str, Any], history_id: str, label: str) -> str:
        api = self.api
        uri = str(ref["uri"])
        file_type = str(ref.get("file_type") or "auto")
        name = str(ref.get("name") or uri.rsplit("/", 1)[-1] or label)
        if uri.split(":", 1)[0].lower() in FETCHED_SCHEMES:
            element = {"src": "url", "url": uri, "ext": file_type, "name": name}
            payload = {
                "history_id": history_id,
                "targets": [{"destination": {"type": "hdas"}, "elements": [element]}],
            }
            answer = api.post(f"fetch {uri}", "tools/fetch", payload)
        else:
            path = local_path(uri, self.settings.data_dir)
            answer = api.call(
                f"upload {path.name}",
                api.gi.tools.upload_file,
                str(path),
                history_id,
                file_type=file_type,
                file_name=name,
            )
        return str(answer["outputs"][0]["id"])

    # --- sync
    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        tracked = [h for h in handles if h.backend_run_id and h.backend_data.get("kind") != TOOL_REQUEST]
        tools = [h for h in handles if h.backend_run_id and h.backend_data.get("kind") == TOOL_REQUEST]
        reports = [SyncReport(run_id=h.run_id) for h in handles if not h.backend_run_id]
        pool = self._pool()
        if tools:
            reports += _collect([(h, pool.submit(self.tools.report, h)) for h in tools])
        if not tracked:
            return reports
        reader = InvocationReader(self.api)
        if not self.settings.galaxy_batch_listing:
            return reports + _collect([(h, pool.submit(reader.poll, h)) for h in tracked])
        try:
            listed, complete, summaries = self._batched_state(pool, tracked)
        except EngineError as exc:
            return reports + [_transient(h, exc) for h in tracked]
        futures = []
        for handle in tracked:
            summary = summaries.get(str(handle.backend_run_id))
            fp = current_fingerprint(str(handle.backend_run_id), listed, complete, summary)
            if fp is not None and fp == handle.backend_data.get("fingerprint"):
                reports.append(SyncReport(run_id=handle.run_id))
            else:
                futures.append((handle, pool.submit(reader.report, handle, summary, fp)))
        return reports + _collect(futures)

    def _batched_state(
        self, pool: ThreadPoolExecutor, handles: list[RunHandle]
    ) -> tuple[dict[str, str], bool, dict[str, dict[str, Any]]]:
        """The listing of new/ready invocations and every run's jobs summary, in a few calls.

        A summary call Galaxy answers with an error (one unknown id spoils its whole chunk:
        HTTP 400, or 500 when the id decodes but names nothing) leaves those runs without a
        summary: they are then read one by one. Only no answer at all fails the pass."""
        api = self.api
        listing = pool.submit(api.active_invocations, len(handles))
        histories = [str(h.backend_data["history_id"]) for h in handles if h.backend_data.get("history_id")]
        ids = [str(h.backend_run_id) for h in handles]
        parts = [pool.submit(api.jobs_summaries, histories[0], part) for part in chunks(ids)] if histories else []
        summaries: dict[str, dict[str, Any]] = {}
        for part in parts:
            try:
                summaries.update(part.result())
            except EngineError as exc:
                if exc.extra.get("galaxy_status") in (None, 401, 403):
                    raise
        listed, complete = listing.result()
        return listed, complete, summaries

    # --- cancel
    def cancel(self, handle: RunHandle) -> CancelResult:
        if handle.backend_data.get("kind") == TOOL_REQUEST:
            return self.tools.cancel(handle)
        if handle.backend_run_id is None and (request_id := self._find_tool_request(handle.run_id)):
            return self.tools.cancel(dataclasses.replace(handle, backend_run_id=request_id))
        invocation_id = handle.backend_run_id or self._find_invocation(handle.run_id)
        if invocation_id is None:
            return CancelResult(confirmed=True, message="no Galaxy invocation was started for this run")
        api = self.api
        try:
            answer = api.call("cancel the invocation", api.gi.invocations.cancel_invocation, invocation_id)
        except EngineUnavailable:
            raise
        except EngineError as exc:
            # e.g. the invocation ended meanwhile: the next sync reports how it ended
            return CancelResult(confirmed=False, message=exc.detail)
        return CancelResult(confirmed=False, message=f"Galaxy invocation is {answer.get('state', 'cancelling')}")

    def _find_tool_request(self, run_id: str) -> str | None:
        """The tool request a submit made before it crashed, if any."""
        history_id = self.api.find_history(history_name(run_id))
        found = self.tools.find(history_id) if history_id is not None else None
        return str(found["id"]) if found else None

    def _find_invocation(self, run_id: str) -> str | None:
        api = self.api
        history_id = api.find_history(history_name(run_id))
        if history_id is None:
            return None
        found = api.call(
            "list the run history's invocations", api.gi.invocations.get_invocations, history_id=history_id
        )
        return str(found[0]["id"]) if found else None


def uses_cached_jobs(spec: RunSpec) -> bool:
    """Whether Galaxy may re-use equal finished jobs: asked for, or a resumed rerun."""
    return spec.resume_from is not None or spec.engine_parameters.get("use_cached_jobs") == "true"


def _workflow_info(workflow: dict[str, Any]) -> WorkflowInfo:
    """Input labels by kind: labels come from ``inputs``, kinds from the matching ``steps``."""
    kinds: dict[str, list[str]] = {"data": [], "parameter": []}
    steps = workflow.get("steps") or {}
    for index, item in (workflow.get("inputs") or {}).items():
        label = item.get("label")
        step_type = (steps.get(index) or {}).get("type")
        if not label:
            continue
        kind = "parameter" if step_type == "parameter_input" else "data"
        kinds[kind].append(str(label))
    return WorkflowInfo(
        id=str(workflow["id"]),
        name=str(workflow.get("name")),
        data_inputs=tuple(kinds["data"]),
        parameter_inputs=tuple(kinds["parameter"]),
    )


def _collect(futures: list[tuple[RunHandle, Future[SyncReport]]]) -> list[SyncReport]:
    """Each run's report; a Galaxy failure on one run is a transient report for that run only."""
    reports = []
    for handle, future in futures:
        try:
            reports.append(future.result())
        except EngineError as exc:
            reports.append(_transient(handle, exc))
        except Exception as exc:  # one odd answer must not stop the batch nor move the run
            log.exception("reading Galaxy invocation %s failed", handle.backend_run_id)
            reports.append(_transient(handle, EngineError(f"unexpected Galaxy answer: {exc!r}")))
    return reports


def _transient(handle: RunHandle, exc: EngineError) -> SyncReport:
    """A Galaxy failure during sync: no state change, retried later."""
    unavailable = isinstance(exc, EngineUnavailable)
    return SyncReport(
        run_id=handle.run_id,
        transient_error=exc.detail,
        retry_after=UNAVAILABLE_RETRY_SECONDS if unavailable else 60.0,
    )
