"""Galaxy tool requests (issue 22): one sync pass over N active tool requests against the
simulated Galaxy of bench/fake_galaxy.py (every request answered after a fixed latency).

    .venv/bin/python bench/galaxy_tools.py                       # 1,000 requests, 50 ms
    .venv/bin/python bench/galaxy_tools.py --requests 200 --latency 0.02

The fake (bench/fake_galaxy.py's FakeToolGalaxy) answers ``GET /api/jobs?tool_request_id=`` with
a request's jobs and ``GET /api/tool_requests/{id}`` with its state. The galaxy backend's ``sync``
is called in-process (no database) on RunHandles as the worker holds them, twice:

* pass 1, *first sight*: every request still recorded as ``new`` (all have been expanded into
  jobs meanwhile): its jobs are read first, and jobs present mean Galaxy submitted it, so its
  state is not read;
* pass 2, *steady*: the same requests, nothing changed: one jobs read per run.

The fake serves from a process of its own (a Galaxy never shares the worker's GIL); with
``--fake-in-process`` from a thread of this one, as the first figures were taken. CPU is this
process's, the sync's own (plus the fake's when in-process).

Target (issue 22): a pass <= 1.25 x N x latency / concurrency. The least a pass needing R
requests can take, R x latency / concurrency, is printed beside it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fake_galaxy import FakeGalaxy, FakeToolGalaxy

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunHandle
from flowdeck.settings import Settings


class Counts:
    """The fake's request counts, whether it serves from this process or another."""

    def __init__(self, fake: FakeGalaxy, url: str | None = None) -> None:
        self.fake, self.url = fake, url

    def take(self) -> tuple[dict[str, int], int]:
        """(requests by kind, most in flight) since the last take."""
        if self.url is None:
            found = self.fake.counts(reset=True)
        else:
            found = httpx.get(f"{self.url}/_bench/counts?reset", timeout=10).json()
        return found["requests"], found["max_in_flight"]


@contextmanager
def serving(fake: FakeGalaxy, in_process: bool) -> Iterator[Counts]:
    """The fake serving in a thread of this process, or in a process of its own (as a Galaxy is:
    its CPU then competes with the sync's for the cores, not for this process's GIL)."""
    if in_process:
        with fake.running():
            yield Counts(fake)
        return
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    child = multiprocessing.get_context("fork").Process(target=_serve, args=(fake, ready), daemon=True)
    child.start()
    try:
        fake.port = ready.get(timeout=60)
        yield Counts(fake, fake.url)
    finally:
        child.terminate()
        child.join()


def _serve(fake: FakeGalaxy, ready: multiprocessing.Queue[int]) -> None:
    with fake.running():
        ready.put(fake.port)
        threading.Event().wait()


def timed_pass(backend: GalaxyBackend, counts: Counts, handles: list[RunHandle]) -> tuple[float, float, list[Any]]:
    """(seconds, CPU seconds of this process, reports) of one sync pass."""
    counts.take()
    started, cpu = time.perf_counter(), time.process_time()
    reports = backend.sync(handles)
    return time.perf_counter() - started, time.process_time() - cpu, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fake-in-process", action="store_true", help="serve the fake from a thread of this process")
    args = parser.parse_args()
    n, latency, conc = args.requests, args.latency, args.concurrency
    fake = FakeToolGalaxy(invocations=n, latency=latency, min_seconds=3600, max_seconds=7200, started_ago=1800)
    with serving(fake, args.fake_in_process) as counts, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), galaxy_url=fake.url, galaxy_api_key=fake.api_key, sync_concurrency=conc)
        backend = GalaxyBackend(settings)
        backend.engine_version()  # BioBlend imported and a connection made before the clock starts
        handles = fake.tool_handles(Path(tmp))
        target = 1.25 * n * latency / conc
        where = "in this process" if args.fake_in_process else "in its own process"
        print(
            f"{n} tool requests, {latency * 1000:.0f} ms per call, concurrency {conc}, fake {where}: target {target:.2f} s"
        )
        for name in ("first sight", "steady"):
            seconds, cpu, reports = timed_pass(backend, counts, handles)
            requests, in_flight = counts.take()
            calls = sum(requests.values())
            print(
                f"  {name:12s} {seconds:6.2f} s  CPU {cpu:5.2f} s  calls {calls:5d} ({requests})  "
                f"floor {calls * latency / conc:.2f} s  max in flight {in_flight}  "
                f"{'within' if seconds <= target else 'OVER'} target"
            )
            by_run = {r.run_id: r for r in reports}
            handles = [
                replace(
                    h,
                    backend_data=by_run[h.run_id].backend_data or h.backend_data,
                    state=by_run[h.run_id].state or h.state,
                )
                for h in handles
            ]


if __name__ == "__main__":
    main()
