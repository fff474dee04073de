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

Target (issue 22): a pass <= 1.25 x N x latency / concurrency. The least a pass needing R
requests can take, R x latency / concurrency, is printed beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fake_galaxy import FakeGalaxy, FakeToolGalaxy

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunHandle
from flowdeck.settings import Settings


def timed_pass(backend: GalaxyBackend, fake: FakeGalaxy, handles: list[RunHandle]) -> tuple[float, list[Any]]:
    fake.reset_counts()
    started = time.perf_counter()
    reports = backend.sync(handles)
    return time.perf_counter() - started, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n, latency, conc = args.requests, args.latency, args.concurrency
    fake = FakeToolGalaxy(invocations=n, latency=latency, min_seconds=3600, max_seconds=7200, started_ago=1800)
    with fake.running(), tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), galaxy_url=fake.url, galaxy_api_key=fake.api_key, sync_concurrency=conc)
        backend = GalaxyBackend(settings)
        backend.engine_version()  # BioBlend imported and a connection made before the clock starts
        handles = fake.tool_handles(Path(tmp))
        target = 1.25 * n * latency / conc
        print(f"{n} tool requests, {latency * 1000:.0f} ms per call, concurrency {conc}: target {target:.2f} s")
        for name in ("first sight", "steady"):
            seconds, reports = timed_pass(backend, fake, handles)
            calls = sum(fake.requests.values())
            floor = calls * latency / conc
            print(
                f"  {name:12s} {seconds:6.2f} s  calls {calls:5d} ({dict(fake.requests)})  "
                f"floor {floor:.2f} s  max in flight {fake.max_in_flight}  "
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
