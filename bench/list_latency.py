"""List latency, in-process: GET /runs?page_size=100 through the whole app, timed around each request.

    .venv/bin/python bench/list_latency.py DATA_DIR     # a database filled by bench/fill_runs.py

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
from flowdeck.services.paging import encode_run_position
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    times = asyncio.run(measure_list(args.data_dir))
    print(
        f"first page: median {times.first_ms:.2f} ms, p95 {times.first_p95_ms:.2f} ms; deep page: median {times.deep_ms:.2f} ms"
    )


if __name__ == "__main__":
    main()
