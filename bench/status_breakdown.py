"""CPU per request of GET /runs/{id}/status and POST /runs, in-process, against the bare endpoints.

    .venv/bin/python bench/status_breakdown.py            # 5 rounds of 3000 status calls, 300 submits
    .venv/bin/python bench/status_breakdown.py --rounds 1 --profile status   # cProfile of the status calls

The apps are called as ASGI applications (no client, no socket), and the figure is process CPU
time per call: on a shared machine that is steadier than wall time. Other processes still slow a
round down (caches, a busy host), so the calls are measured in interleaved rounds and the least
disturbed round is the figure; the median follows. The bare apps are bench/bare_app.py's. Also
printed: the status read alone (Database.read_point) and a 404 miss.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.bare_app import create_bare_app

from flowdeck.api.app import create_app
from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.domain.filters import RunFilter
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings

STATUS_CALLS = 3000
SUBMIT_CALLS = 300
WARMUP = 50
Call = Callable[[], Awaitable[Any]]


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def _asgi_call(app: Any, scope: dict[str, Any], body: bytes = b"", expect: int = 200) -> Call:
    async def call() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # a disconnect never comes
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        if status != [expect]:
            raise RuntimeError(f"{scope['method']} {scope['path']} answered {status}")

    return call


async def _cpu_us(call: Call, calls: int, profile: bool = False) -> float:
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.process_time()
    for _ in range(calls):
        await call()
    spent = time.process_time() - started
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return spent / calls * 1e6


async def breakdown(data_dir: Path, profile: str | None, rounds: int) -> dict[str, list[float]]:
    settings = Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING")
    upgrade(settings)
    services = AppContext.create(settings)
    app, bare = create_app(settings, services), create_bare_app()
    content_type = common.multipart_body(data_dir / "submit.multipart")
    body = (data_dir / "submit.multipart").read_bytes()
    form = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    async with app.router.lifespan_context(app):
        await _asgi_call(app, _scope("POST", common.WES + "/runs", form), body)()
        async with services.db.read() as conn:
            newest = (await run_rows.page(conn, RunFilter(), 1, None))[0]
            run_id = newest["id"] if isinstance(newest, Mapping) else newest.id  # a baseline's row, or a RunRecord

        async def status_read() -> None:
            await services.db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id})

        calls: dict[str, tuple[Call, int]] = {
            "status": (_asgi_call(app, _scope("GET", f"{common.WES}/runs/{run_id}/status")), STATUS_CALLS),
            "bare status": (_asgi_call(bare, _scope("GET", "/status")), STATUS_CALLS),
            "status read alone (Database.read_point)": (status_read, STATUS_CALLS),
            "404 route miss": (_asgi_call(app, _scope("GET", "/no-such-route"), expect=404), STATUS_CALLS),
            "submit": (_asgi_call(app, _scope("POST", common.WES + "/runs", form), body), SUBMIT_CALLS),
            "bare submit": (_asgi_call(bare, _scope("POST", "/runs", form), body), SUBMIT_CALLS),
        }
        for call, _ in calls.values():
            for _ in range(WARMUP):
                await call()
        spent: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(rounds):
            for name, (call, n) in calls.items():
                spent[name].append(await _cpu_us(call, n, profile == name and round_ == 0))
        return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="print a cProfile of one of the measured calls, e.g. status or submit")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the least disturbed is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowdeck-status-") as tmp:
        for name, us in asyncio.run(breakdown(Path(tmp), args.profile, args.rounds)).items():
            print(f"{name}: {min(us):.0f} µs CPU per call (median {statistics.median(us):.0f} of {len(us)} rounds)")


if __name__ == "__main__":
    main()
