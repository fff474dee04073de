"""Webhook deliveries under submit load: ``flowdeck up`` (SQLite, demo backend) and a receiver
on 127.0.0.1 in this process.

Phase 1 submits ``--runs`` WES runs at concurrency ``--concurrency`` with no endpoint; phase 2
registers one service-wide endpoint and submits as many again, while the worker delivers.
Reports the submit rate of each phase, deliveries per second (received / time from the first
to the last receipt), and event→receipt latency (receipt time minus the event's ``at``).

    PYTHONPATH=src python bench/webhooks.py --runs 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import WES, flowdeck_up, free_port

FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://bench"}


class Counter:
    """What the receiver got: receipt times and the events' own times."""

    def __init__(self) -> None:
        self.receipts: list[tuple[float, float]] = []
        self.ids: set[str] = set()
        self.lock = threading.Lock()


def receiver(counter: Counter) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            now = time.time()
            with counter.lock:
                counter.receipts.append((now, datetime.fromisoformat(body["data"]["at"]).timestamp()))
                counter.ids.add(self.headers["webhook-id"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


async def submit(url: str, runs: int, concurrency: int) -> tuple[float, list[str]]:
    """Submit ``runs`` runs; (requests per second, run ids)."""
    ids: list[str] = []
    queue = iter(range(runs))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one_client() -> None:
            for _ in queue:
                answer = await client.post(f"{WES}/runs", data=FORM)
                answer.raise_for_status()
                ids.append(answer.json()["run_id"])

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return runs / (time.perf_counter() - start), ids


async def until_done(url: str, ids: list[str], limit_seconds: float = 600) -> None:
    deadline = time.monotonic() + limit_seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for run_id in ids:
            while (await client.get(f"{WES}/runs/{run_id}/status")).json()["state"] != "COMPLETE":
                if time.monotonic() > deadline:
                    raise TimeoutError(run_id)
                await asyncio.sleep(0.2)


async def pending(url: str, hook_id: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        rows = (await client.get(f"/webhooks/{hook_id}/deliveries", params={"page_size": 1000})).json()
    return sum(1 for row in rows["deliveries"] if row["state"] == "pending")


async def run(url: str, port: int, counter: Counter, runs: int, concurrency: int) -> dict[str, float]:
    plain, first = await submit(url, runs, concurrency)
    await until_done(url, first)
    async with httpx.AsyncClient(base_url=url) as client:
        hook = (await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"})).json()
    hooked, second = await submit(url, runs, concurrency)
    await until_done(url, second)
    for _ in range(3000):  # 10 minutes at most
        if not await pending(url, hook["id"]):
            break
        await asyncio.sleep(0.2)
    return {"submit_plain": plain, "submit_hooked": hooked}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="runs per phase (at most 250: one log page)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    counter = Counter()
    server, port = receiver(counter)
    env = {
        "FLOWDECK_DEMO_MIN_SECONDS": "0.2",
        "FLOWDECK_DEMO_MAX_SECONDS": "0.5",
        "FLOWDECK_DEMO_SUCCESS_RATE": "1",
        "FLOWDECK_OUTBOUND_ALLOWLIST": "127.0.0.1",
    }
    try:
        with tempfile.TemporaryDirectory() as data, flowdeck_up(Path(data), "demo", env) as flowdeck:
            rates = asyncio.run(run(flowdeck.url, port, counter, args.runs, args.concurrency))
    finally:
        server.shutdown()
    received = sorted(counter.receipts)
    span = received[-1][0] - received[0][0]
    lags = sorted(r - at for r, at in received)
    print(
        f"runs per phase={args.runs} concurrency={args.concurrency}: submit without endpoint "
        f"{rates['submit_plain']:.0f} req/s, with one endpoint {rates['submit_hooked']:.0f} req/s; "
        f"deliveries received={len(received)} (distinct webhook-id {len(counter.ids)}) "
        f"in {span:.1f} s = {len(received) / span:.0f}/s; event->receipt p50={statistics.median(lags) * 1000:.0f} ms "
        f"p99={lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
