"""One Galaxy tool request through flowdeck against the same request posted to Galaxy directly
(issue 22: flowdeck adds <= 1 s), on a real Galaxy with its celery worker.

    .venv/bin/python bench/galaxy_tools_direct.py --reps 5
    FLOWDECK_GALAXY_REUSE=/tmp/fd-galaxy .venv/bin/python bench/galaxy_tools_direct.py   # a Galaxy up.sh started

The tool is flowdeck_upper on one small dataset already in Galaxy (so neither side uploads):

* flowdeck: ``flowdeck up`` (temp SQLite, the galaxy backend, default settings unless
  ``--sync-min-seconds``), ``POST /jobs`` for the shipped ``galaxy_upper`` pipeline with
  ``{"input": {"galaxy_dataset_id": …}}``; its time is the server's COMPLETE event minus the moment
  just before the POST (a history of its own, the tool request, the syncs, the output fetched into
  flowdeck's storage);
* direct: ``POST /api/jobs`` with the same tool id and inputs into one history, then
  ``GET /api/jobs?tool_request_id=`` every ``--poll`` seconds until its job is ``ok``.

Runs alternate; medians are reported. Galaxy starts (tests/support/galaxy.py) unless
``FLOWDECK_GALAXY_REUSE`` names the root of one already running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tests.support.galaxy import GalaxyServer, galaxy_session

TOOL, PIPELINE = "flowdeck_upper", "galaxy_upper"
TARGET_SECONDS = 1.0
TERMINAL = {"completed", "failed", "canceled"}


class Galaxy:
    """The direct side: Galaxy's own API, as a script using the Tool Request API would."""

    def __init__(self, server: GalaxyServer) -> None:
        self.url = server.url
        self.http = httpx.Client(base_url=f"{server.url}/api", headers={"x-api-key": server.api_key}, timeout=30)
        self.history = str(self._post("histories", {"name": "bench galaxy_tools_direct"})["id"])

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.http.post(path, json=body)
        answer.raise_for_status()
        return answer.json()

    def dataset(self, text: str) -> str:
        """A pasted dataset, ready."""
        fetched = self._post(
            "tools/fetch",
            {
                "history_id": self.history,
                "targets": [
                    {
                        "destination": {"type": "hdas"},
                        "elements": [{"src": "pasted", "paste_content": text, "ext": "txt"}],
                    }
                ],
            },
        )
        dataset_id = str(fetched["outputs"][0]["id"])
        self.wait(lambda: self.http.get(f"datasets/{dataset_id}").json()["state"] == "ok", 0.2)
        return dataset_id

    def run(self, dataset_id: str, poll: float) -> float:
        """POST the tool request, poll its jobs until they are ok: seconds."""
        started = time.monotonic()
        body = {"tool_id": TOOL, "history_id": self.history, "inputs": {"input": {"src": "hda", "id": dataset_id}}}
        request_id = self._post("jobs", body)["tool_request_id"]

        def done() -> bool:
            jobs = self.http.get("jobs", params={"tool_request_id": request_id}).json()
            if any(job["state"] in ("error", "failed", "deleted") for job in jobs):
                raise RuntimeError(f"direct tool request {request_id} failed: {jobs}")
            return bool(jobs) and all(job["state"] == "ok" for job in jobs)

        self.wait(done, poll)
        return time.monotonic() - started

    @staticmethod
    def wait(condition: Any, poll: float, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError("Galaxy did not get there in time")
            time.sleep(poll)


def through_flowdeck(url: str, dataset_id: str, galaxy: Galaxy | None = None) -> float:
    body = {"pipeline_name": PIPELINE, "parameters": {"input": {"galaxy_dataset_id": dataset_id}}}
    started = time.time()
    answer = httpx.post(f"{url}/jobs", json=body, timeout=60)
    answer.raise_for_status()
    job_id = str(answer.json()["id"])
    Galaxy.wait(lambda: httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()["state"] in TERMINAL, 0.1)
    events = httpx.get(f"{url}/jobs/{job_id}/events", timeout=10).json()["events"]
    done = [e["at"] for e in events if e.get("to_state") == "COMPLETE"]
    if not done:
        raise RuntimeError(f"flowdeck job {job_id} did not complete: {events[-1]}")
    if galaxy is not None:
        print("  timeline: " + timeline(galaxy, job_id, events, started), file=sys.stderr)
    return datetime.fromisoformat(done[0]).timestamp() - started


def timeline(galaxy: Galaxy, job_id: str, events: list[dict[str, Any]], started: float) -> str:
    """Seconds after the POST: flowdeck's state events and Galaxy's own times for the run's
    history, tool request job (created, last update = when it ended)."""

    def at(value: str) -> str:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # Galaxy's times are UTC
        return f"{moment.timestamp() - started:+.2f}"

    marks = [f"{e.get('to_state')} {at(e['at'])}" for e in events if e.get("to_state")]
    found = galaxy.http.get(
        "histories", params={"q": "name", "qv": f"flowdeck run {job_id}", "keys": "id,create_time"}
    ).json()
    if found:
        marks.append(f"gx history {at(found[0]['create_time'])}")
        requests = galaxy.http.get(f"histories/{found[0]['id']}/tool_requests").json()
        for job in galaxy.http.get("jobs", params={"tool_request_id": requests[0]["id"]}).json() if requests else []:
            marks += [f"gx job created {at(job['create_time'])}", f"gx job {job['state']} {at(job['update_time'])}"]
    return ", ".join(marks)


def measure(server: GalaxyServer, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    galaxy = Galaxy(server)
    dataset_id = galaxy.dataset("banana\napple\ncherry\n")
    env = {"FLOWDECK_GALAXY_URL": server.url, "FLOWDECK_GALAXY_API_KEY": server.api_key}
    if args.sync_min_seconds is not None:
        env["FLOWDECK_SYNC_MIN_SECONDS"] = str(args.sync_min_seconds)
    if args.fast_interval is not None:
        env["FLOWDECK_GALAXY_FAST_SYNC_INTERVAL"] = str(args.fast_interval)
    ours: list[float] = []
    direct: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="flowdeck-bench-gxtool-"))
    try:
        with common.flowdeck_up(tmp / "data", backends="galaxy", extra_env=env) as up:
            through_flowdeck(up.url, dataset_id)  # warm: BioBlend imported, the tool's schema cached
            galaxy.run(dataset_id, args.poll)
            for rep in range(args.reps):
                ours.append(through_flowdeck(up.url, dataset_id, galaxy if args.timeline else None))
                direct.append(galaxy.run(dataset_id, args.poll))
                print(f"repetition {rep + 1}: flowdeck {ours[-1]:.2f} s, direct {direct[-1]:.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ours, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--poll", type=float, default=0.2, help="the direct side's poll interval (s)")
    parser.add_argument("--timeline", action="store_true", help="print each flowdeck run's timeline")
    parser.add_argument("--sync-min-seconds", type=float, help="FLOWDECK_SYNC_MIN_SECONDS (default: flowdeck's)")
    parser.add_argument("--fast-interval", type=float, help="FLOWDECK_GALAXY_FAST_SYNC_INTERVAL (default: flowdeck's)")
    args = parser.parse_args()
    load_before = common.load_average()
    if os.environ.get("FLOWDECK_GALAXY_REUSE") is None:
        print("starting a Galaxy (tests/support/galaxy.py) ...", file=sys.stderr)
    with galaxy_session() as server:
        ours, direct = measure(server, args)
    report(ours, direct, args, load_before)


def report(ours: list[float], direct: list[float], args: argparse.Namespace, load_before: str) -> None:
    flowdeck_s, direct_s = common.median(ours), common.median(direct)
    overhead = flowdeck_s - direct_s
    command = " ".join([".venv/bin/python", "bench/galaxy_tools_direct.py", *sys.argv[1:]])
    poll = "default" if args.sync_min_seconds is None else f"{args.sync_min_seconds} s"
    if args.fast_interval is not None:
        poll += f", galaxy_fast_sync_interval {args.fast_interval} s"
    lines = [
        "## One Galaxy tool request: flowdeck against Galaxy's Tool Request API directly",
        "",
        f"Command: `{command}`; {args.reps} repetitions each, alternating, medians; load average "
        f"{load_before} before, {common.load_average()} after; {os.cpu_count()} cores shared.",
        "",
        "| | seconds (median) | all repetitions |",
        "|---|---|---|",
        f"| flowdeck: POST /jobs → COMPLETE event (sync_min_seconds {poll}) | {flowdeck_s:.2f} | {_join(ours)} |",
        f"| Galaxy directly: POST /api/jobs → job ok (polled every {args.poll} s) | {direct_s:.2f} | {_join(direct)} |",
        f"| **overhead** (target ≤ {TARGET_SECONDS:.0f} s) | **{overhead:.2f}** "
        f"{'met' if overhead <= TARGET_SECONDS else 'MISSED'} | |",
        "",
    ]
    print("\n".join(lines))


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
