"""Call caching at a million runs: the server time of a submission answered from the cache, side
by side with a cache miss and with a submission that does not ask for the cache.

    cp -r /tmp/fill_new /tmp/cache_bench      # a copy: this script migrates and writes to it
    .venv/bin/python bench/call_cache.py /tmp/cache_bench
    .venv/bin/python bench/call_cache.py /tmp/small --fill 20000   # fills a fresh folder first

The database is migrated to head, and every COMPLETE run gets a random call-cache key (so the
index of migration 0010 holds ~70% of the runs). One source run is made the way the service
makes it: submitted with ``use_cached`` (a miss), then ended COMPLETE with one stored output file
and a results record, as the worker's sync writes them. Each request is timed around the whole
app in this process (httpx's ASGI transport: routing, the form, the key, the probe, the copy in
local storage, the commit), so the figure is the server's own time. The probe's query plan is
printed too: it must be one search of ``ix_runs_cache_key_group_state_end_time``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fill_runs import fill

from flowdeck.api.app import create_app
from flowdeck.db.migrate import upgrade
from flowdeck.services.core.storage import open_storage
from flowdeck.settings import Settings

URL = "/ga4gh/wes/v1/runs"
GROUP = "bench-lab"
WORKFLOW = b"cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [true]\ninputs: {n: int}\noutputs: {}\n"
REQUESTS = 200
WARMUP = 20


def _form(n: int, use_cached: bool) -> dict[str, str]:
    return {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "bench.cwl",
        "workflow_params": json.dumps({"n": n}),
        "workflow_engine": "demo",  # the simulation: the engine is not what is measured
        "research_group": GROUP,
        "use_cached": "true" if use_cached else "false",
    }


async def _post(client: httpx.AsyncClient, n: int, use_cached: bool) -> tuple[float, str]:
    started = time.perf_counter()
    response = await client.post(URL, data=_form(n, use_cached), files={"workflow_attachment": ("bench.cwl", WORKFLOW)})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
    return elapsed, str(response.json()["run_id"])


def _keys_for_all(data_dir: Path) -> int:
    """A random key on every COMPLETE run that has none (the index then holds most runs)."""
    with sqlite3.connect(data_dir / "flowdeck.db", isolation_level=None) as conn:
        conn.execute("BEGIN")
        changed = conn.execute(
            "UPDATE runs SET cache_key = lower(hex(randomblob(32))) WHERE state = 'COMPLETE' AND cache_key IS NULL"
        ).rowcount
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    return int(changed)


def _complete(settings: Settings, run_id: str) -> None:
    """End the source run as the worker's sync would: one output file in storage, results recorded."""
    store = open_storage(settings)
    key = f"results/{run_id}/outputs/0/out.txt"
    store.put_bytes(key, b"cached output\n")
    record = {"files": [{"name": "out.txt", "key": key, "size": 14, "checksum": "sha256:x"}], "outputs": {}, "logs": {}}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(settings.data_dir / "flowdeck.db", isolation_level=None) as conn:
        conn.execute(
            "UPDATE runs SET state = 'COMPLETE', start_time = ?, end_time = ?, results = ?, next_check_at = NULL,"
            " output_files = ? WHERE id = ?",
            (now, now, json.dumps(record), json.dumps([{"name": "out.txt", "location": "out.txt"}]), run_id),
        )


def _plan(data_dir: Path, cache_key: str) -> str:
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE cache_key = ? AND research_group = ? AND state = 'COMPLETE'"
            " AND results IS NOT NULL ORDER BY end_time DESC LIMIT 1",
            (cache_key, GROUP),
        ).fetchall()
    return "; ".join(str(row[-1]) for row in rows)


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} ms   p95 {statistics.quantiles(times, n=20)[-1]:6.2f} ms"


async def measure(data_dir: Path) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING")
    upgrade(settings)
    keyed = _keys_for_all(data_dir)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        _, source = await _post(client, 0, True)  # a miss: stored QUEUED with its key
        _complete(settings, source)
        for i in range(WARMUP):
            await _post(client, 0, True)
            await _post(client, 10_000_000 + i, True)
        hits = [(await _post(client, 0, True))[0] for _ in range(REQUESTS)]
        misses = [(await _post(client, i + 1, True))[0] for i in range(REQUESTS)]
        plain = [(await _post(client, i + 1, False))[0] for i in range(REQUESTS)]
        last = (await client.get(f"/jobs/{(await _post(client, 0, True))[1]}")).json()
    if last["cached_from"] != source:
        raise RuntimeError(f"the last identical submission was not a cache hit: {last}")
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    return {
        "runs": total,
        "keyed": keyed,
        "hit": hits,
        "miss": misses,
        "plain": plain,
        "plan": _plan(data_dir, last["cache_key"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="a COPY of a filled data folder (it is migrated and written to)")
    parser.add_argument("--fill", type=int, default=0, help="fill a fresh data_dir with this many runs first")
    args = parser.parse_args()
    if args.fill:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        fill(args.data_dir, args.fill)
    result = asyncio.run(measure(args.data_dir))
    print(f"runs stored: {result['runs']:,} ({result['keyed']:,} given a cache key)")
    print(f"cache hit  (use_cached, identical):  {_summary(result['hit'])}   target <= 20 ms")
    print(f"cache miss (use_cached, new params): {_summary(result['miss'])}")
    print(f"no cache   (use_cached false):       {_summary(result['plain'])}")
    print(f"probe plan: {result['plan']}")


if __name__ == "__main__":
    main()
