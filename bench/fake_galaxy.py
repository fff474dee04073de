"""A simulated Galaxy for the sync benchmark: the API paths the galaxy backend's sync
reads, each answered after a fixed latency, over N invocations that progress with time.

Start it on its own (prints its URL, API key and the invocation/history ids file)::

    .venv/bin/python bench/fake_galaxy.py --invocations 10000 --latency 0.05 --port 8095

or in-process from a benchmark::

    from bench.fake_galaxy import FakeGalaxy
    with FakeGalaxy(invocations=10_000, latency=0.05).running() as fake:
        handles = fake.handles(workdir=tmp)      # RunHandles as the worker would hold them
        GalaxyBackend(Settings(galaxy_url=fake.url, galaxy_api_key=fake.api_key)).sync(handles)
        fake.requests                            # requests answered, by path kind

Invocation ``i`` runs for a duration drawn (seeded) from ``--min-seconds``..``--max-seconds``
from ``--started-ago`` seconds before the server starts: ``new`` for the first 10 %, then
``scheduled`` with its two jobs ``queued``/``running`` and finally ``ok``; ``--fail-share`` of
them end with a failed job. Connections are kept alive (HTTP/1.1), as Galaxy's uvicorn does;
``max_in_flight`` is the most requests it ever served at once, which is how tests see the
client's concurrency bound.
Paths answered (all under /api): version, users/current, invocations (listing),
invocations/{id}, invocations/{id}/jobs_summary, histories/{id}/jobs_summary, jobs
(?invocation_id=), jobs/{id}, datasets/{id}, datasets/{id}/display.

:class:`FakeToolGalaxy` also answers the Tool Request API's reads (its invocations stand in for
tool requests).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "fake-galaxy-key"
USER_ID = "f00dfacef00dface"


@dataclass(frozen=True)
class Invocation:
    index: int
    start: float
    duration: float
    fails: bool

    @property
    def id(self) -> str:
        return f"{self.index:016x}"

    @property
    def history_id(self) -> str:
        return f"{self.index + 1 << 32:016x}"

    def job_ids(self) -> list[str]:
        return [f"{(self.index << 1) + n + (1 << 48):016x}" for n in range(2)]

    def state_at(self, now: float) -> tuple[str, list[str]]:
        """(invocation state, job states) ``now``."""
        progress = (now - self.start) / self.duration
        if progress < 0.1:
            return "new", []
        if progress < 0.5:
            return "scheduled", ["running", "queued"]
        if progress < 1.0:
            return "scheduled", ["ok", "running"]
        return ("scheduled", ["ok", "error"]) if self.fails else ("scheduled", ["ok", "ok"])


class FakeGalaxy:
    """N simulated invocations behind a threaded HTTP server on 127.0.0.1."""

    def __init__(
        self,
        invocations: int = 1000,
        latency: float = 0.05,
        min_seconds: float = 60.0,
        max_seconds: float = 600.0,
        fail_share: float = 0.1,
        seed: int = 0,
        port: int = 0,
        started_ago: float = 0.0,
    ) -> None:
        rng = random.Random(seed)
        started = time.time() - started_ago
        self.latency = latency
        self.port = port
        self.invocations = [
            Invocation(i, started, rng.uniform(min_seconds, max_seconds), rng.random() < fail_share)
            for i in range(invocations)
        ]
        self.by_id = {inv.id: inv for inv in self.invocations}
        self.jobs = {job: (inv, n) for inv in self.invocations for n, job in enumerate(inv.job_ids())}
        self.requests: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        # invocation ids answered with this HTTP status instead (tests of Galaxy failures)
        self.failing: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    api_key = API_KEY

    @contextmanager
    def running(self) -> Iterator[FakeGalaxy]:
        """Serve in a background thread for the duration of the block."""
        fake = self
        handler = type("Handler", (_Handler,), {"fake": fake})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024
        self.port = self._server.server_address[1]
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def handles(self, workdir: Path) -> list[Any]:
        """RunHandles for every invocation, as the worker holds them after submit."""
        from flowdeck.domain.runs import RunHandle
        from flowdeck.domain.states import State

        return [
            RunHandle(
                run_id=f"run-{inv.index}",
                backend_run_id=inv.id,
                backend_data={"history_id": inv.history_id, "invocation_id": inv.id, "galaxy_url": self.url},
                workdir=workdir / f"run-{inv.index}",
                state=State.RUNNING,
            )
            for inv in self.invocations
        ]

    def count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def counts(self, reset: bool = False) -> dict[str, Any]:
        """The requests answered by kind and the most in flight (then forgotten when ``reset``)."""
        with self._lock:
            found = {"requests": dict(self.requests), "max_in_flight": self.max_in_flight}
        if reset:
            self.reset_counts()
        return found

    def reset_counts(self) -> None:
        """Forget the requests counted so far (between the passes of a benchmark or test)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    # --- answers
    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """(HTTP status, JSON body or plain text) for a GET of ``path``."""
        parts = path.strip("/").split("/")[1:]  # drop "api"
        now = time.time()

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        if parts == ["version"]:
            return 200, {"version_major": "26.1", "version_minor": "1"}
        if parts == ["users", "current"]:
            return 200, {"id": USER_ID, "email": "bench@example.org"}
        if parts == ["invocations"]:
            return 200, self._listing(now, int(first("limit", "20")), int(first("offset", "0")))
        if len(parts) == 3 and parts[0] == "histories" and parts[2] == "jobs_summary":
            ids = [i for i in first("ids").split(",") if i]
            spoiled = [self.failing[i] for i in ids if i in self.failing]
            if spoiled:  # as in Galaxy, one id it cannot answer spoils the whole call
                return spoiled[0], {"err_msg": "simulated Galaxy failure", "err_code": 0}
            return 200, [self._summary(self.by_id[i], now) for i in ids if i in self.by_id]
        if parts[:1] == ["invocations"] and len(parts) >= 2:
            if parts[1] in self.failing:
                return self.failing[parts[1]], {"err_msg": "simulated Galaxy failure", "err_code": 0}
            inv = self.by_id.get(parts[1])
            if inv is None:
                return 404, {"err_msg": "invocation not found", "err_code": 404001}
            return 200, self._summary(inv, now) if parts[2:] == ["jobs_summary"] else self._invocation(inv, now)
        if parts == ["jobs"]:
            inv = self.by_id.get(first("invocation_id"))
            return 200, [self._job(job, now) for job in inv.job_ids()] if inv else []
        if parts[:1] == ["jobs"] and len(parts) == 2 and parts[1] in self.jobs:
            return 200, {**self._job(parts[1], now), "stdout": "", "stderr": "", "exit_code": 0}
        if parts[:1] == ["datasets"] and len(parts) >= 2:
            if parts[2:] == ["display"]:
                return 200, "SIMULATED OUTPUT\n"
            return 200, {
                "id": parts[1],
                "name": "out",
                "extension": "txt",
                "file_ext": "txt",
                "file_size": 17,
                "state": "ok",
                "download_url": f"/api/datasets/{parts[1]}/display",
            }
        return 404, {"err_msg": f"the fake Galaxy does not answer {path}", "err_code": 404001}

    def _listing(self, now: float, limit: int, offset: int) -> list[dict[str, Any]]:
        active = [inv for inv in self.invocations if inv.state_at(now)[0] in ("new", "ready")]
        return [self._brief(inv, now) for inv in active[offset : offset + min(limit, 100)]]

    def _brief(self, inv: Invocation, now: float) -> dict[str, Any]:
        return {
            "id": inv.id,
            "state": inv.state_at(now)[0],
            "history_id": inv.history_id,
            "workflow_id": "0000000000000001",
            "model_class": "WorkflowInvocation",
        }

    def _summary(self, inv: Invocation, now: float) -> dict[str, Any]:
        state, jobs = inv.state_at(now)
        return {
            "id": inv.id,
            "model": "WorkflowInvocation",
            "states": dict(Counter(jobs)),
            "populated_state": "ok" if state == "scheduled" else "new",
        }

    def _invocation(self, inv: Invocation, now: float) -> dict[str, Any]:
        jobs = inv.state_at(now)[1]
        steps = [
            {"workflow_step_label": f"step{n}", "order_index": n + 1, "job_id": job, "state": "scheduled"}
            for n, job in enumerate(inv.job_ids()[: len(jobs)])
        ]
        done = jobs == ["ok", "ok"]
        outputs = {"out": {"src": "hda", "id": inv.job_ids()[1]}} if done else {}
        return {**self._brief(inv, now), "steps": steps, "outputs": outputs, "output_collections": {}, "messages": []}

    def _job(self, job_id: str, now: float) -> dict[str, Any]:
        inv, n = self.jobs[job_id]
        jobs = inv.state_at(now)[1]
        state = jobs[n] if n < len(jobs) else "new"
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(inv.start))
        return {
            "id": job_id,
            "tool_id": f"tool{n}",
            "state": state,
            "create_time": created,
            "update_time": created,
            "exit_code": 1 if state == "error" else 0,
        }


class FakeToolGalaxy(FakeGalaxy):
    """The simulated Galaxy, also answering the Tool Request API's reads: a request is ``new``
    while its invocation is, ``submitted`` after; ``GET /api/jobs?tool_request_id=`` lists the
    jobs it has so far. ``failed_requests`` (id -> message) are ``failed`` (with whatever jobs
    they made); ``expanding`` (id -> jobs made so far) are still ``new``, as a request Galaxy
    has not finished expanding."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed_requests: dict[str, str] = {}
        self.expanding: dict[str, int] = {}

    def tool_handles(self, workdir: Path) -> list[Any]:
        """RunHandles of tool-request runs, as the worker holds them after submit."""
        return [
            replace(h, backend_data={**h.backend_data, "kind": "tool_request", "tool_request_state": "new"})
            for h in self.handles(workdir)
        ]

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[1:]
        if parts[:1] == ["tool_requests"] and len(parts) >= 2 and parts[1] in self.by_id:
            state, message = self._request_state(parts[1])
            if parts[2:] == ["state"]:
                return 200, json.dumps(state)  # Galaxy answers the state as a JSON string
            return 200, {"id": parts[1], "state": state, "state_message": message, "request": {"x": 1}}
        if parts == ["jobs"] and "tool_request_id" in query:
            request_id = query["tool_request_id"][0]
            inv = self.by_id.get(request_id)
            if inv is None:
                return 200, []
            made = min(len(inv.state_at(time.time())[1]), self.expanding.get(request_id, 2))
            return 200, [self._job(job, time.time()) for job in inv.job_ids()[:made]]
        return super().answer(path, query)

    def _request_state(self, request_id: str) -> tuple[str, dict[str, str] | None]:
        if request_id in self.failed_requests:
            return "failed", {"err_msg": self.failed_requests[request_id]}
        new = request_id in self.expanding or self.by_id[request_id].state_at(time.time())[0] == "new"
        return ("new" if new else "submitted"), None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGalaxy
    protocol_version = "HTTP/1.1"  # keep-alive, so a client's connection pool is put to use
    # as uvicorn does: else the body, written after the headers, waits for a delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_bench/counts":  # for a benchmark serving the fake from another process
            self._send(200, self.fake.counts(reset="reset" in url.query))
            return
        kind = "/".join(p if not _is_id(p) else "{id}" for p in url.path.strip("/").split("/"))
        self.fake.count(kind)
        try:
            self._answer(url.path, url.query)
        finally:
            self.fake.done()

    def _answer(self, path: str, query: str) -> None:
        time.sleep(self.fake.latency)
        body: Any
        if self.headers.get("x-api-key") != API_KEY:
            status, body = 401, {"err_msg": "Provided API key is not valid.", "err_code": 401001}
        else:
            status, body = self.fake.answer(path, parse_qs(query))
        self._send(status, body)

    def _send(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the benchmark counts instead
        return


def _is_id(part: str) -> bool:
    return len(part) == 16 and all(c in "0123456789abcdef" for c in part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer (default 0.05)")
    parser.add_argument("--min-seconds", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--fail-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--started-ago", type=float, default=0.0, help="seconds the invocations have been running")
    args = parser.parse_args()
    fake = FakeGalaxy(
        args.invocations,
        args.latency,
        args.min_seconds,
        args.max_seconds,
        args.fail_share,
        args.seed,
        args.port,
        args.started_ago,
    )
    with fake.running():
        print(json.dumps({"url": fake.url, "api_key": fake.api_key, "invocations": len(fake.invocations)}))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print(json.dumps(dict(fake.requests)))


if __name__ == "__main__":
    main()
