"""The ``omics`` backend: AWS HealthOmics through boto3.

A run names a private or Ready2Run workflow (see :func:`omics_aws.parse_workflow`).
Submit stages local inputs (:mod:`omics_inputs`) and calls ``StartRun`` with a
``requestId`` derived from the run id, so a dispatch retried after a crash gets the
run it already started instead of a second one. Role, output URI, storage, run
group and priority come from settings (engine parameters may override the last four).

Sync calls ``GetRun`` (states mapped in :data:`omics_aws.RUN_STATES`) and, once the
run runs, ``ListRunTasks``; each task that has ended is read with ``GetRunTask`` and
its CloudWatch Logs stream (``/aws/omics/WorkflowLog``, ``run/{id}/task/{taskId}``)
copied once into the run's folder, as is the run's own stream when it ends. A
completed run's outputs are the objects under its output prefix in S3, each with a
pre-signed download URL. Cancel calls ``CancelRun``; a later sync sees CANCELLED.
Any AWS failure during sync is a transient report: the run's state stays as it was.

``backend_run_id`` is the HealthOmics run id; ``backend_data`` holds
``omics_status``, ``workflow_id``, ``workflow_type``, ``run_output_uri``,
``logged_tasks`` (task ids whose logs are copied already) and ``tasks_listed_at``. While a
run stays RUNNING its tasks are listed at most every ``omics_task_refresh_seconds``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.backends.base import Backend
from flowdeck.backends.omics_aws import (
    LOG_GROUP,
    RUN_STATES,
    TASK_STATES,
    AwsClients,
    aws_call,
    is_run_id,
    request_id,
    run_name,
    split_s3,
    workflow_of,
)
from flowdeck.backends.omics_inputs import check_inputs, run_parameters, staged, staging_key
from flowdeck.domain.runs import CancelResult, OutputFile, RunHandle, RunSpec, Submitted, SyncReport, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import EngineError, EngineUnavailable, InvalidInput

if TYPE_CHECKING:
    from flowdeck.settings import Settings

log = logging.getLogger(__name__)
UNAVAILABLE_RETRY_SECONDS = 15.0
# A sync of this many steady runs or more reads their states from ListRuns pages (LIST_PAGE
# runs a call, the API's most) instead of one GetRun a run.
LISTING_FROM = 20
LIST_PAGE = 100
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "DELETED"})
TASK_ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class OmicsBackend(Backend):
    """AWS HealthOmics: private and Ready2Run workflows."""

    name = "omics"
    # HealthOmics knows each workflow's language; the type only labels the run.
    workflow_types = {"WDL": ["1.0", "1.1", "development"], "CWL": ["v1.0", "v1.1", "v1.2"]}
    engine_parameter_allowlist = frozenset({"storage_type", "storage_capacity", "run_group_id", "priority"})
    parallel_sync = True
    validation_blocks = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._aws: AwsClients | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("boto3") is not None

    @classmethod
    def missing_configuration(cls, settings: Settings) -> str | None:
        if not settings.omics_role_arn or not settings.omics_output_uri:
            return "FLOWDECK_OMICS_ROLE_ARN and FLOWDECK_OMICS_OUTPUT_URI are not set"
        return None

    @property
    def aws(self) -> AwsClients:
        with self._lock:
            if self._aws is None:
                self._aws = AwsClients(self.settings)
            return self._aws

    def _sync_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.sync_concurrency, thread_name_prefix="omics-sync")
            return self._pool

    def engine_version(self) -> str:
        return f"AWS HealthOmics API {self.aws.omics.meta.service_model.api_version}"

    def validate(self, spec: RunSpec) -> None:
        super().validate(spec)
        workflow_of(spec)
        check_inputs(spec, self.settings)
        options = spec.engine_parameters
        if options.get("storage_type", "STATIC").upper() not in ("STATIC", "DYNAMIC"):
            raise InvalidInput("storage_type is STATIC or DYNAMIC")
        for key in ("storage_capacity", "priority", "run_group_id"):
            if key in options and not options[key].isdigit():
                raise InvalidInput(f"{key} must be a whole number")

    # --- submit
    def submit(self, spec: RunSpec) -> Submitted:
        workflow = workflow_of(spec)
        params = staged(run_parameters(spec), lambda path: self._upload(spec.run_id, path), self.settings)
        request: dict[str, Any] = {
            "workflowId": workflow.id,
            "workflowType": workflow.type,
            "roleArn": self.settings.omics_role_arn,
            "outputUri": self.settings.omics_output_uri,
            "requestId": request_id(spec.run_id),
            "name": run_name(spec.run_id),
            "parameters": params,
            "tags": {"flowdeck_run": spec.run_id[:256]},
            **self._run_options(spec),
        }
        if workflow.version:
            request["workflowVersionName"] = workflow.version
        answer = aws_call("start the HealthOmics run", self.aws.omics.start_run, **request)
        data = {
            "omics_status": answer.get("status"),
            "workflow_id": workflow.id,
            "workflow_type": workflow.type,
            "run_output_uri": answer.get("runOutputUri"),
            "logged_tasks": [],
        }
        return Submitted(backend_run_id=str(answer["id"]), backend_data=data, state=State.INITIALIZING)

    def _run_options(self, spec: RunSpec) -> dict[str, Any]:
        """Storage, run group and priority: the run's engine parameters, else settings."""
        given, settings = spec.engine_parameters, self.settings
        storage_type = given.get("storage_type", settings.omics_storage_type or "").upper() or None
        capacity = given.get("storage_capacity", settings.omics_storage_capacity)
        options: dict[str, Any] = {
            "storageType": storage_type,
            "storageCapacity": int(capacity) if capacity is not None and storage_type != "DYNAMIC" else None,
            "runGroupId": given.get("run_group_id", settings.omics_run_group_id),
            "priority": int(given["priority"]) if "priority" in given else settings.omics_priority,
        }
        return {key: value for key, value in options.items() if value is not None}

    def _upload(self, run_id: str, path: Path) -> str:
        bucket, prefix = split_s3(str(self.settings.omics_staging_uri))
        key = staging_key(prefix, run_id, path)
        aws_call(
            f"upload {path.name} to s3://{bucket}", self.aws.s3.upload_file, Filename=str(path), Bucket=bucket, Key=key
        )
        return f"s3://{bucket}/{key}"

    # --- sync
    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        pool = self._sync_pool()
        running = self._listed_running(handles)
        futures = [
            (handle, None if handle.backend_run_id in running else pool.submit(self._report, handle))
            for handle in handles
        ]
        reports = []
        for handle, future in futures:
            try:
                reports.append(self._steady(handle) if future is None else future.result())
            except EngineError as exc:
                reports.append(_transient(handle, exc))
        return reports

    def _listed_running(self, handles: Sequence[RunHandle]) -> set[str]:
        """The ids of the steady runs (RUNNING at the last sync, tasks listed lately) that a
        ListRuns listing shows still RUNNING; empty when too few runs are steady for a listing to
        save calls, or when listing fails (each run is then read by GetRun).

        There is no batch GetRun: at 1,000 active runs one GetRun each was ~4 s of boto3 CPU
        alone (bench/NOTES.md), where ListRuns pages of 100 answer for every one of them."""
        steady = {h.backend_run_id for h in handles if h.backend_run_id and self._tasks_fresh(h, "RUNNING")}
        if len(steady) < LISTING_FROM:
            return set()
        found: set[str] = set()
        token: str | None = None
        try:
            while True:
                page = aws_call(
                    "list the running HealthOmics runs",
                    self.aws.omics.list_runs,
                    status="RUNNING",
                    maxResults=LIST_PAGE,
                    **_token(token),
                )
                found.update(str(item.get("id")) for item in page.get("items") or [] if item.get("status") == "RUNNING")
                token = page.get("nextToken")
                if not token:
                    return steady & found
        except EngineError as exc:
            log.warning("listing HealthOmics runs failed, reading each run instead: %s", exc)
            return set()

    def _steady(self, handle: RunHandle) -> SyncReport:
        """A run the listing shows still RUNNING, with its tasks listed lately: nothing to read."""
        return SyncReport(run_id=handle.run_id, state=State.RUNNING, backend_data=dict(handle.backend_data))

    def _report(self, handle: RunHandle) -> SyncReport:
        if not handle.backend_run_id:
            return SyncReport(run_id=handle.run_id)
        if not is_run_id(handle.backend_run_id):
            return _lost(handle, f"{handle.backend_run_id!r} is not a HealthOmics run id")
        try:
            run = aws_call("read the HealthOmics run", self.aws.omics.get_run, id=handle.backend_run_id)
        except EngineError as exc:
            if isinstance(exc, EngineUnavailable) or exc.extra.get("aws_code") != "ResourceNotFoundException":
                raise
            return _lost(handle, f"HealthOmics has no run {handle.backend_run_id}")
        return self._read_run(handle, run)

    def _read_run(self, handle: RunHandle, run: dict[str, Any]) -> SyncReport:
        status = str(run.get("status"))
        state = RUN_STATES.get(status, State.UNKNOWN)
        data = {**handle.backend_data, "omics_status": status, "run_output_uri": run.get("runOutputUri")}
        if status in ("PENDING", "STARTING") or self._tasks_fresh(handle, status):
            return SyncReport(run_id=handle.run_id, state=state, backend_data=data)
        tasks = self._tasks(handle, data)
        data["tasks_listed_at"] = time.time()
        report: dict[str, Any] = {"run_id": handle.run_id, "state": state, "tasks": tasks, "backend_data": data}
        if status in ENDED:
            report["stderr_path"] = self._copy_log(handle, f"run/{handle.backend_run_id}", "run.log")
            report["reason"] = _reason(run) if state is not State.COMPLETE else None
        if status == "COMPLETED":
            files = self._output_files(str(run.get("runOutputUri") or ""))
            report.update(exit_code=0, output_files=files, outputs=self._presigned(files))
        return SyncReport(**report)

    def _tasks_fresh(self, handle: RunHandle, status: str) -> bool:
        """True while a run stays RUNNING and its tasks were listed less than
        ``omics_task_refresh_seconds`` ago: the sync is then one GetRun call."""
        listed_at = float(handle.backend_data.get("tasks_listed_at") or 0)
        unchanged = status == "RUNNING" and handle.backend_data.get("omics_status") == "RUNNING"
        return unchanged and time.time() - listed_at < self.settings.omics_task_refresh_seconds

    def _tasks(self, handle: RunHandle, data: dict[str, Any]) -> list[TaskInfo]:
        """Every task of the run; an ended task's details and log are read once."""
        omics, run_id = self.aws.omics, str(handle.backend_run_id)
        logged = set(data.get("logged_tasks") or [])
        tasks, token = [], None
        while True:
            page = aws_call("list the run's tasks", omics.list_run_tasks, id=run_id, **_token(token))
            for item in page.get("items", []):
                task_id, status = str(item["taskId"]), str(item.get("status"))
                if status in TASK_ENDED and task_id not in logged:
                    item = {**item, **aws_call("read a run task", omics.get_run_task, id=run_id, taskId=task_id)}
                    self._copy_log(handle, f"run/{run_id}/task/{task_id}", f"task-{task_id}.log")
                    logged.add(task_id)
                tasks.append(_task_info(handle, item, task_id in logged))
            if not (token := page.get("nextToken")):
                break
        data["logged_tasks"] = sorted(logged)
        return tasks

    def _copy_log(self, handle: RunHandle, stream: str, file_name: str) -> str | None:
        """A CloudWatch Logs stream copied into the run's folder; None when it does not exist."""
        path = handle.workdir / "logs" / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        token, logs = None, self.aws.logs
        while True:
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            try:
                page = aws_call(f"read the log stream {stream}", logs.get_log_events, **kwargs)
            except EngineError as exc:
                if isinstance(exc, EngineUnavailable) or exc.extra.get("aws_code") != "ResourceNotFoundException":
                    raise
                return None
            lines.extend(str(event.get("message", "")) for event in page.get("events", []))
            if page.get("nextForwardToken") in (None, token):  # the same token again: the end
                break
            token = page["nextForwardToken"]
        path.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines))
        return str(path)

    def _output_files(self, run_output_uri: str) -> list[OutputFile]:
        if not run_output_uri:
            return []
        bucket, prefix = split_s3(run_output_uri)
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        paginator = self.aws.s3.get_paginator("list_objects_v2")
        pages = aws_call("list the run's outputs", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix)))
        return [
            OutputFile(name=obj["Key"][len(prefix) :], location=f"s3://{bucket}/{obj['Key']}", size=int(obj["Size"]))
            for page in pages
            for obj in page.get("Contents", [])
        ]

    def _presigned(self, files: list[OutputFile]) -> dict[str, Any]:
        """Output name -> a pre-signed GET URL, ``presign_seconds`` long."""
        urls = {}
        for output in files:
            bucket, key = split_s3(output.location)
            params = {"Bucket": bucket, "Key": key}
            urls[output.name] = aws_call(
                "sign an output link",
                self.aws.s3.generate_presigned_url,
                ClientMethod="get_object",
                Params=params,
                ExpiresIn=self.settings.presign_seconds,
            )
        return urls

    # --- cancel
    def cancel(self, handle: RunHandle) -> CancelResult:
        run_id = handle.backend_run_id or self._find_run(handle.run_id)
        if run_id is None:
            return CancelResult(confirmed=True, message="no HealthOmics run was started for this run")
        try:
            aws_call("cancel the HealthOmics run", self.aws.omics.cancel_run, id=run_id)
        except EngineUnavailable:
            raise
        except EngineError as exc:  # e.g. it ended meanwhile: the next sync says how
            return CancelResult(confirmed=False, message=exc.detail)
        return CancelResult(confirmed=False, message="HealthOmics is stopping the run")

    def _find_run(self, run_id: str) -> str | None:
        found = aws_call("find the HealthOmics run", self.aws.omics.list_runs, name=run_name(run_id))
        items = found.get("items") or []
        return str(items[0]["id"]) if items else None


def _token(token: str | None) -> dict[str, str]:
    return {"startingToken": token} if token else {}


def _task_info(handle: RunHandle, item: dict[str, Any], logged: bool) -> TaskInfo:
    log_file = str(handle.workdir / "logs" / f"task-{item['taskId']}.log") if logged else None
    has_log = log_file is not None and Path(log_file).exists()
    return TaskInfo(
        backend_task_id=str(item["taskId"]),
        name=str(item.get("name") or item["taskId"]),
        state=TASK_STATES.get(str(item.get("status")), State.UNKNOWN),
        start_time=item.get("startTime"),
        end_time=item.get("stopTime"),
        # HealthOmics keeps one stream per task: both of its outputs are in it.
        stdout_path=log_file if has_log else None,
        stderr_path=log_file if has_log else None,
        system_logs=[text for text in (item.get("statusMessage"), item.get("failureReason")) if text],
    )


def _reason(run: dict[str, Any]) -> str:
    parts = [str(run[key]) for key in ("failureReason", "statusMessage") if run.get(key)]
    return ": ".join(parts) or f"HealthOmics run {run.get('id')} is {run.get('status')}"


def _lost(handle: RunHandle, reason: str) -> SyncReport:
    return SyncReport(run_id=handle.run_id, state=State.SYSTEM_ERROR, reason=reason)


def _transient(handle: RunHandle, exc: EngineError) -> SyncReport:
    """An AWS failure during sync: no state change, retried later."""
    retry = UNAVAILABLE_RETRY_SECONDS if isinstance(exc, EngineUnavailable) else 60.0
    return SyncReport(run_id=handle.run_id, transient_error=exc.detail, retry_after=retry)
