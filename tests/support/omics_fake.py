"""A FAKE of AWS HealthOmics for tests: no emulator of it exists (moto has none).

It is a separate HTTP process speaking HealthOmics' REST-JSON protocol, so boto3 is
used unmodified through ``endpoint_url``. Every request and every answer is checked
against botocore's own ``omics`` service model (:mod:`tests.support.omics_model`); a
request that breaks it gets HealthOmics' ``ValidationException`` and is recorded as a
violation, an answer that would break it is a violation too (tests assert none).

Runs walk HealthOmics' real state sequence PENDING → STARTING → RUNNING → COMPLETED |
FAILED, and STOPPING → CANCELLED after CancelRun, with configurable timings. Every
workflow is the two tasks the other engines' test workflows have: ``greet`` then
``shout`` (parameters: ``message``; ``fail`` makes shout fail; ``sleep_seconds`` makes it
long). Task logs go to CloudWatch Logs (``/aws/omics/WorkflowLog``, streams
``run/{id}`` and ``run/{id}/task/{taskId}``) and outputs to S3 under the run's output
prefix, both on moto's server. StartRun is idempotent on ``requestId``.

Faults are set through ``POST /_fake/faults``: the next ``count`` calls of an operation
answer an error code (``after``: only once the call took effect, as a lost answer), and
access keys listed as expired answer ``ExpiredTokenException``. ``GET /_fake/state``
tells calls per operation, violations and runs.

Run it as ``python -m tests.support.omics_fake PORT CONFIG_JSON``; see :class:`OmicsFake`.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3

from tests.support.omics_model import ModelError, OmicsModel

LOG_GROUP = "/aws/omics/WorkflowLog"
ACCOUNT = "123456789012"
TASKS = ("greet", "shout")
_AUTH = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class FakeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class FakeTask:
    id: str
    name: str
    status: str = "RUNNING"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    stopped: datetime | None = None
    ends_at: float = 0.0
    failure: str | None = None


@dataclass
class FakeRun:
    id: str
    request: dict[str, Any]
    status: str = "PENDING"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: datetime | None = None
    stopped: datetime | None = None
    next_at: float = 0.0
    tasks: list[FakeTask] = field(default_factory=list)
    failure: str | None = None
    message: str | None = None
    uuid: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def output_uri(self) -> str:
        base = str(self.request["outputUri"])
        return f"{base if base.endswith('/') else base + '/'}{self.id}/"


class Fake:
    """The service's state: workflows, runs, faults; advanced by a ticker thread."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.timing = {"pending": 0.2, "starting": 0.2, "task": 0.3, "stopping": 0.2, **config.get("timing", {})}
        self.workflows: dict[str, str] = {str(k): v for k, v in config.get("workflows", {}).items()}
        self.latency = float(config.get("latency_seconds", 0))
        self.runs: dict[str, FakeRun] = {}
        self.by_request: dict[str, str] = {}
        self.calls: dict[str, int] = {}
        self.violations: list[str] = []
        self.faults: dict[str, list[dict[str, Any]]] = {}
        self.expired: set[str] = set()
        self.lock = threading.RLock()
        endpoint = config["aws_endpoint_url"]
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.logs = boto3.client("logs", endpoint_url=endpoint, region_name=config.get("region", "us-east-1"))
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_group(logGroupName=LOG_GROUP)

    # --- operations
    def start_run(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if (known := self.by_request.get(params["requestId"])) is not None:
                return self._started(self.runs[known])
            kind = self.workflows.get(str(params.get("workflowId")))
            if kind is None or kind != params.get("workflowType", "PRIVATE"):
                raise FakeError("ResourceNotFoundException", f"workflow {params.get('workflowId')} not found")
            if params.get("storageType") == "DYNAMIC" and "storageCapacity" in params:
                raise FakeError("ValidationException", "storageCapacity is not allowed with DYNAMIC storage")
            run = FakeRun(id=str(1000000 + len(self.runs) + 1), request=params)
            run.next_at = time.monotonic() + self.timing["pending"]
            self.runs[run.id] = run
            self.by_request[params["requestId"]] = run.id
            return self._started(run)

    def _started(self, run: FakeRun) -> dict[str, Any]:
        return {
            "arn": self._arn(run),
            "id": run.id,
            "status": run.status,
            "uuid": run.uuid,
            "runOutputUri": run.output_uri,
        }

    def get_run(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params["id"])
        answer: dict[str, Any] = {
            "arn": self._arn(run),
            "id": run.id,
            "uuid": run.uuid,
            "status": run.status,
            "workflowId": run.request.get("workflowId"),
            "workflowType": run.request.get("workflowType", "PRIVATE"),
            "roleArn": run.request["roleArn"],
            "name": run.request.get("name"),
            "parameters": run.request.get("parameters", {}),
            "outputUri": run.request["outputUri"],
            "runOutputUri": run.output_uri,
            "storageType": run.request.get("storageType", "STATIC"),
            "creationTime": run.created,
            "tags": run.request.get("tags", {}),
            "logLocation": {"runLogStream": self._stream_arn(f"run/{run.id}")},
        }
        for key in ("runGroupId", "priority", "storageCapacity", "workflowVersionName"):
            if key in run.request:
                answer[key] = run.request[key]
        optional = {"startTime": run.started, "stopTime": run.stopped, "failureReason": run.failure}
        answer.update({k: v for k, v in {**optional, "statusMessage": run.message}.items() if v is not None})
        return answer

    def list_runs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            found = [
                r
                for r in self.runs.values()
                if params.get("name") in (None, r.request.get("name")) and params.get("status") in (None, r.status)
            ]
        start = int(params.get("startingToken") or 0)
        size = int(params.get("maxResults") or 100)
        more = start + size < len(found)
        found = found[start : start + size]
        items = [
            {
                "arn": self._arn(r),
                "id": r.id,
                "status": r.status,
                "name": r.request.get("name"),
                "creationTime": r.created,
            }
            for r in found
        ]
        answer: dict[str, Any] = {"items": [{k: v for k, v in item.items() if v is not None} for item in items]}
        if more:
            answer["nextToken"] = str(start + size)
        return answer

    def list_run_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params["id"])
        start = int(params.get("startingToken") or 0)
        size = int(params.get("maxResults") or self.config.get("task_page_size", 100))
        page = run.tasks[start : start + size]
        answer: dict[str, Any] = {"items": [self._task_item(task) for task in page]}
        if start + size < len(run.tasks):
            answer["nextToken"] = str(start + size)
        return answer

    def get_run_task(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params["id"])
        task = next((t for t in run.tasks if t.id == params["taskId"]), None)
        if task is None:
            raise FakeError("ResourceNotFoundException", f"run {run.id} has no task {params['taskId']}")
        answer = {**self._task_item(task), "logStream": self._stream_arn(f"run/{run.id}/task/{task.id}")}
        if task.failure:
            answer.update(failureReason="TASK_FAILED", statusMessage=task.failure)
        return answer

    def cancel_run(self, params: dict[str, Any]) -> None:
        run = self._run(params["id"])
        with self.lock:
            if run.status not in ("PENDING", "STARTING", "RUNNING"):
                raise FakeError("ConflictException", f"run {run.id} is {run.status}")
            run.status, run.next_at = "STOPPING", time.monotonic() + self.timing["stopping"]

    # --- the state walk
    def tick(self) -> None:
        with self.lock:
            active = [r for r in self.runs.values() if r.status in ("PENDING", "STARTING", "RUNNING", "STOPPING")]
        for run in active:
            with self.lock:
                if time.monotonic() >= run.next_at:
                    self._advance(run)

    def _advance(self, run: FakeRun) -> None:
        now = time.monotonic()
        if run.status == "PENDING":
            run.status, run.next_at = "STARTING", now + self.timing["starting"]
        elif run.status == "STARTING":
            run.status, run.started = "RUNNING", datetime.now(UTC)
            self._log(f"run/{run.id}", f"run {run.id} started")
            self._start_task(run, 0)
        elif run.status == "RUNNING":
            self._end_task(run)
        elif run.status == "STOPPING":
            for task in run.tasks:
                if task.status == "RUNNING":
                    task.status, task.stopped = "CANCELLED", datetime.now(UTC)
                    self._log(f"run/{run.id}/task/{task.id}", f"{task.name} cancelled")
            self._log(f"run/{run.id}", f"run {run.id} cancelled")
            run.status, run.stopped = "CANCELLED", datetime.now(UTC)

    def _start_task(self, run: FakeRun, index: int) -> None:
        params = run.request.get("parameters", {})
        seconds = self.timing["task"] + (float(params.get("sleep_seconds", 0)) if index == len(TASKS) - 1 else 0)
        task = FakeTask(id=f"{run.id}{index + 1:03d}", name=TASKS[index], ends_at=time.monotonic() + seconds)
        run.tasks.append(task)
        run.next_at = task.ends_at
        self._log(f"run/{run.id}/task/{task.id}", f"{task.name} started")

    def _end_task(self, run: FakeRun) -> None:
        task, params = run.tasks[-1], run.request.get("parameters", {})
        message = str(params.get("message", "hello"))
        stream = f"run/{run.id}/task/{task.id}"
        task.stopped = datetime.now(UTC)
        if task.name == "shout" and params.get("fail"):
            self._log(stream, "shout failed on purpose")
            task.status, task.failure = "FAILED", "shout exited with code 3"
            run.status, run.stopped, run.failure = "FAILED", task.stopped, "WORKFLOW_RUN_FAILED"
            run.message = f"task {task.name} ({task.id}) failed"
            self._log(f"run/{run.id}", f"run {run.id} failed: {run.message}")
            return
        self._log(stream, message if task.name == "greet" else message.upper())
        task.status = "COMPLETED"
        if len(run.tasks) < len(TASKS):
            self._start_task(run, len(run.tasks))
            return
        bucket, _, prefix = run.output_uri[5:].partition("/")
        self.s3.put_object(Bucket=bucket, Key=f"{prefix}out/greeting.txt", Body=f"{message}\n".encode())
        self.s3.put_object(Bucket=bucket, Key=f"{prefix}out/shouted.txt", Body=f"{message.upper()}\n".encode())
        self._log(f"run/{run.id}", f"run {run.id} completed")
        run.status, run.stopped = "COMPLETED", task.stopped

    # --- helpers
    def _run(self, run_id: str) -> FakeRun:
        with self.lock:
            run = self.runs.get(run_id)
        if run is None:
            raise FakeError("ResourceNotFoundException", f"run {run_id} not found")
        return run

    def _task_item(self, task: FakeTask) -> dict[str, Any]:
        item: dict[str, Any] = {"taskId": task.id, "name": task.name, "status": task.status, "cpus": 1, "memory": 1}
        item.update(creationTime=task.created, startTime=task.created)
        if task.stopped is not None:
            item["stopTime"] = task.stopped
        return item

    def _arn(self, run: FakeRun) -> str:
        return f"arn:aws:omics:{self.config.get('region', 'us-east-1')}:{ACCOUNT}:run/{run.id}"

    def _stream_arn(self, stream: str) -> str:
        region = self.config.get("region", "us-east-1")
        return f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{LOG_GROUP}:log-stream:{stream}"

    def _log(self, stream: str, message: str) -> None:
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        event = {"timestamp": int(time.time() * 1000), "message": message}
        self.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[event])

    def take_fault(self, operation: str) -> dict[str, Any] | None:
        with self.lock:
            queue = self.faults.get(operation) or []
            return queue.pop(0) if queue else None


HANDLERS = {
    "StartRun": Fake.start_run,
    "GetRun": Fake.get_run,
    "ListRuns": Fake.list_runs,
    "ListRunTasks": Fake.list_run_tasks,
    "GetRunTask": Fake.get_run_task,
    "CancelRun": Fake.cancel_run,
}


class Handler(BaseHTTPRequestHandler):
    fake: Fake
    model: OmicsModel
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PUT = do_GET

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        if url.path.startswith("/_fake/"):
            return self._admin(url.path, body)
        routed = self.model.route(self.command, url.path)
        if routed is None:
            return self._error("UnknownOperationException", f"no operation at {self.command} {url.path}", 404)
        op, labels = routed
        fake = self.fake
        with fake.lock:
            fake.calls[op.name] = fake.calls.get(op.name, 0) + 1
        if fake.latency:
            time.sleep(fake.latency)
        try:
            self._check_auth()
            params = self.model.request_params(op, labels, url.query, body)
        except ModelError as exc:
            with fake.lock:
                fake.violations.append(f"request {op.name}: {exc}")
            return self._error("ValidationException", str(exc)[:500])
        except FakeError as exc:
            return self._error(exc.code, exc.message)
        self._call(op, params)

    def _call(self, op: Any, params: dict[str, Any]) -> None:
        fault = self.fake.take_fault(op.name)
        if fault is not None and not fault.get("after"):
            return self._error(fault["code"], f"fault injected into {op.name}")
        handler = HANDLERS.get(op.name)
        if handler is None:
            return self._error("ValidationException", f"the fake does not implement {op.name}")
        try:
            answer = handler(self.fake, params) or {}
            payload = self.model.answer_body(op, answer)
        except FakeError as exc:
            return self._error(exc.code, exc.message)
        except ModelError as exc:
            with self.fake.lock:
                self.fake.violations.append(f"answer {op.name}: {exc}")
            return self._error("InternalServerException", "the fake's answer broke the model")
        if fault is not None:  # the call took effect; the answer is lost
            return self._error(fault["code"], f"fault injected after {op.name}")
        self._send(int(op.http.get("responseCode", 200)), payload)

    def _check_auth(self) -> None:
        found = _AUTH.search(self.headers.get("Authorization", ""))
        if found is None or found.group(3) != "omics":
            raise FakeError("UnrecognizedClientException", "the request is not signed for omics with SigV4")
        if found.group(1) in self.fake.expired:
            raise FakeError("ExpiredTokenException", "The security token included in the request is expired")

    def _admin(self, path: str, body: bytes) -> None:
        fake = self.fake
        with fake.lock:
            if path == "/_fake/faults":
                request = json.loads(body)
                for _ in range(int(request.get("count", 1))):
                    fault = {"code": request.get("code", "ThrottlingException"), "after": request.get("after", False)}
                    fake.faults.setdefault(request["operation"], []).append(fault)
                fake.latency = float(request.get("latency_seconds", fake.latency))
                fake.expired.update(request.get("expired_keys", []))
                fake.expired.difference_update(request.get("renewed_keys", []))
            violations = list(fake.violations)
            if path == "/_fake/violations":
                fake.violations.clear()
            state = {
                "calls": fake.calls,
                "violations": violations,
                "runs": {r.id: {"status": r.status, "requestId": r.request["requestId"]} for r in fake.runs.values()},
            }
        self._send(200, json.dumps(state).encode())

    def _error(self, code: str, message: str, status: int | None = None) -> None:
        payload = json.dumps({"message": message}).encode()
        self._send(status or self.model.error_status(code), payload, {"x-amzn-ErrorType": code})

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def serve(port: int, config: dict[str, Any]) -> None:
    """Serve the fake on 127.0.0.1:port until killed."""
    fake = Fake(config)
    handler = type("BoundHandler", (Handler,), {"fake": fake, "model": OmicsModel()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True

    def ticker() -> None:
        while True:
            fake.tick()
            time.sleep(0.02)

    threading.Thread(target=ticker, daemon=True).start()
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), json.loads(sys.argv[2]))


# --- the test side: start the fake beside moto's server, talk to its admin routes


@dataclass
class OmicsFake:
    """A running fake: its URL, moto's URL (S3 and CloudWatch Logs), and its admin routes."""

    url: str
    aws_url: str

    def state(self) -> dict[str, Any]:
        return self._admin("state", None)

    def take_violations(self) -> list[str]:
        """Every breach of the service model seen since the last call (then forgotten)."""
        found: list[str] = self._admin("violations", {})["violations"]
        return found

    def fault(self, operation: str, code: str = "ThrottlingException", count: int = 1, after: bool = False) -> None:
        """The next ``count`` calls of ``operation`` answer ``code`` (``after``: once they took effect)."""
        self._admin("faults", {"operation": operation, "code": code, "count": count, "after": after})

    def set_latency(self, seconds: float) -> None:
        """Every later call is answered ``seconds`` late (a slow service, for benchmarks)."""
        self._admin("faults", {"operation": "-", "count": 0, "latency_seconds": seconds})

    def expire(self, access_key: str, expired: bool = True) -> None:
        """Calls signed with ``access_key`` answer ExpiredTokenException (or no longer do)."""
        key = "expired_keys" if expired else "renewed_keys"
        self._admin("faults", {"operation": "-", "count": 0, key: [access_key]})

    def _admin(self, name: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        import urllib.request

        data = json.dumps(payload).encode() if payload is not None else None
        with urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/_fake/{name}", data=data), timeout=10
        ) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
