"""Where the time of one GET /runs/{id}/status goes, in-process (median of 500 sequential calls each).

    .venv/bin/python bench/status_breakdown.py

Prints: the whole request through the app, the database part alone (Database.read() + runs.get),
a bare connect + one raw SELECT through the same engine, and a 404 route miss (the framework alone).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from flowdeck.api.app import create_app
from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.services.context import Services
from flowdeck.settings import Settings

CALLS = 500


async def _median_ms(call: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def breakdown(data_dir: Path) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING")
    upgrade(settings)
    services = Services.create(settings)
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        body = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://bench"}
        run_id = (await client.post("/ga4gh/wes/v1/runs", json=body)).json()["run_id"]

        async def database() -> None:
            async with services.db.read() as conn:
                await run_rows.get(conn, run_id)

        async def raw() -> None:
            async with services.db.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT state FROM runs WHERE id = ?", (run_id,))

        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "whole status request": lambda: client.get(f"/ga4gh/wes/v1/runs/{run_id}/status"),
            "Database.read() + runs.get": database,
            "connect + one raw SELECT": raw,
            "404 route miss (framework only)": lambda: client.get("/no-such-route"),
        }
        return {name: await _median_ms(call) for name, call in calls.items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flowdeck-status-") as tmp:
        for name, ms in asyncio.run(breakdown(Path(tmp))).items():
            print(f"{name}: {ms:.2f} ms")


if __name__ == "__main__":
    main()
