"""List latency, in-process: GET /runs?page_size=100 through the whole app, timed around each request.

    .venv/bin/python bench/list_latency.py DATA_DIR     # a database filled by bench/fill_runs.py
    .venv/bin/python bench/list_latency.py DATA_DIR --filters   # filters, aggregates, status under a list flood

No socket and no load generator: httpx's ASGI transport calls the app in this process, so the
figure is the server's own time (routing, auth, the keyset query on SQLite, JSON encoding).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from flowdeck.api.app import create_app
from flowdeck.services.core.paging import encode_run_position
from flowdeck.settings import Settings

URL = "/ga4gh/wes/v1/runs"
REQUESTS = 300
WARMUP = 30


@dataclass
class ListTimes:
    first_ms: float
    first_p95_ms: float
    deep_ms: float


async def _timed(client: httpx.AsyncClient, params: dict[str, str | int], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(URL, params=params)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or len(response.json()["runs"]) != 100:
            raise RuntimeError(f"list answered {response.status_code}: {response.text[:200]}")
    return times


def _middle_token(data_dir: Path) -> str:
    """A page token from the middle of the table, as a client paging that far would hold."""
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        created, run_id = conn.execute(
            "SELECT created_at, id FROM runs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?", (total // 2,)
        ).fetchone()
    return encode_run_position(datetime.fromisoformat(created).replace(tzinfo=UTC), run_id)


async def measure_list(data_dir: Path) -> ListTimes:
    app = create_app(Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _timed(client, {"page_size": 100}, WARMUP)
            first = await _timed(client, {"page_size": 100}, REQUESTS)
            token = _middle_token(data_dir)
            deep = await _timed(client, {"page_size": 100, "page_token": token}, REQUESTS // 3)
    return ListTimes(
        first_ms=statistics.median(first),
        first_p95_ms=statistics.quantiles(first, n=20)[-1],
        deep_ms=statistics.median(deep),
    )


# Every list filter with none, one and many matches (bench/fill_runs.py's data), and the aggregates.
FILTERS = [
    (f"{URL}?{query}", query)
    for query in (
        "tag=project:none",
        "tag=project:one",
        "tag=project:p1",
        "state=PAUSED",
        "state=RUNNING",
        "state=COMPLETE",
    )
] + [(f"/jobs?{query}", query) for query in ("pipeline_name=nonexistent", "pipeline_name=one", "pipeline_name=pipe3")]
AGGREGATES = ["/ga4gh/wes/v1/service-info", "/healthz", "/metrics"]
STATUS_POLLS = 400


async def _median_ms(client: httpx.AsyncClient, url: str, count: int = 15) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return statistics.median(times)


async def _status_p99(client: httpx.AsyncClient, run_id: str) -> float:
    times = []
    for _ in range(STATUS_POLLS):
        started = time.perf_counter()
        await client.get(f"{URL}/{run_id}/status")
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.001)
    return statistics.quantiles(times, n=100)[-1]


async def _flood(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for url, _ in FILTERS:
            await client.get(url)


async def measure_filters(data_dir: Path) -> None:
    """Print each filter's and aggregate's median, and the status p99 alone and under a list flood."""
    app = create_app(Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for url in AGGREGATES:
                print(f"{url}: median {await _median_ms(client, url):.2f} ms")
            for url, _ in FILTERS:
                print(f"{url}: median {await _median_ms(client, url):.2f} ms")
            run_id = (await client.get(URL, params={"page_size": 1})).json()["runs"][0]["run_id"]
            alone = await _status_p99(client, run_id)
            stop = asyncio.Event()
            flood = [asyncio.create_task(_flood(client, stop)) for _ in range(4)]
            loaded = await _status_p99(client, run_id)
            stop.set()
            await asyncio.gather(*flood)
    print(f"status p99: alone {alone:.2f} ms, during 4 concurrent list floods {loaded:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--filters", action="store_true", help="every filter, the aggregates, status under a flood")
    args = parser.parse_args()
    if args.filters:
        asyncio.run(measure_filters(args.data_dir))
        return
    times = asyncio.run(measure_list(args.data_dir))
    print(
        f"first page: median {times.first_ms:.2f} ms, p95 {times.first_p95_ms:.2f} ms; deep page: median {times.deep_ms:.2f} ms"
    )


if __name__ == "__main__":
    main()
