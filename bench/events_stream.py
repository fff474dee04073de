"""GET /events under load: N open streams on ``flowdeck up`` (SQLite, demo backend), M runs
from submit to COMPLETE. Reports commit→receipt latency (receipt time minus the event's
``at``, set in the writing transaction) p50/p99 over every stream, and the API's RSS.

    PYTHONPATH=src python bench/events_stream.py --streams 50 --runs 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import WES, flowdeck_up

FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://bench"}


async def _stream(client: httpx.AsyncClient, want: int, latencies: list[float], opened: asyncio.Event) -> None:
    seen = 0
    async with client.stream("GET", "/events", params={"type": "state"}) as response:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                opened.set()
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                latencies.append(time.time() - datetime.fromisoformat(event["at"]).timestamp())
                seen += 1
                if seen == want:
                    return


async def run(url: str, streams: int, runs: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=streams + 10)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        opened = [asyncio.Event() for _ in range(streams)]
        tasks = [asyncio.create_task(_stream(client, 4 * runs, latencies, o)) for o in opened]
        await asyncio.gather(*(o.wait() for o in opened))
        for _ in range(runs):
            (await client.post(f"{WES}/runs", data=FORM)).raise_for_status()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = {"FLOWDECK_DEMO_MIN_SECONDS": "0.5", "FLOWDECK_DEMO_MAX_SECONDS": "1", "FLOWDECK_DEMO_SUCCESS_RATE": "1"}
    with tempfile.TemporaryDirectory() as data, flowdeck_up(Path(data), "demo", env) as server:
        before = server.memory()
        latencies = sorted(asyncio.run(run(server.url, args.streams, args.runs)))
        after = server.memory()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"streams={args.streams} runs={args.runs} events received={len(latencies)} "
        f"latency p50={p50:.0f} ms p99={p99:.0f} ms "
        f"API RSS before={before['VmRSS']:.0f} MB after={after['VmRSS']:.0f} MB peak={after['VmHWM']:.0f} MB"
    )


if __name__ == "__main__":
    main()
