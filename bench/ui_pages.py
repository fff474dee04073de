"""The web UI's server time, in-process: the runs page, its live rows, a run page, the overview (auth mode none).

    .venv/bin/python bench/fill_runs.py DATA_DIR 1000000
    .venv/bin/python bench/ui_pages.py DATA_DIR [--only overview]
    .venv/bin/python bench/ui_pages.py DATA_DIR --text   # the description search (?text=), per needle

httpx's ASGI transport calls the app in this process, so each figure is the server's own time
(routing, the session check, the keyset page on SQLite, Jinja2 rendering), and the process CPU
per request, which a loaded shared machine inflates less than wall time. Also prints the runs
page's weight: its HTML plus the script and style sheet it loads.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx

from flowdeck.api.app import create_app
from flowdeck.settings import Settings

REQUESTS = 200
WARMUP = 20
_cpu_ms: list[float] = []  # process CPU per request of the last _times call (all threads)


async def _times(client: httpx.AsyncClient, url: str, count: int) -> list[float]:
    times = []
    cpu = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    _cpu_ms.append((time.process_time() - cpu) * 1000 / count)
    return times


def _report(name: str, times: list[float]) -> None:
    p95 = statistics.quantiles(times, n=20)[-1]
    print(
        f"{name}: p50 {statistics.median(times):.2f} ms, p95 {p95:.2f} ms, "
        f"CPU {_cpu_ms[-1]:.2f} ms/request ({len(times)} requests)"
    )


async def measure(data_dir: Path, only: str = "") -> None:
    app = create_app(Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            newest = (await client.get("/ga4gh/wes/v1/runs", params={"page_size": 1})).json()["runs"][0]["run_id"]
            pages = {
                "runs page /ui/": "/ui/",
                "live rows /ui/rows": "/ui/rows",
                "runs page, state=completed": "/ui/?state=completed",
                "run page /ui/runs/{id}": f"/ui/runs/{newest}",
                "overview /ui/overview": "/ui/overview",
            }
            for name, url in pages.items():
                if only not in name:
                    continue
                await _times(client, url, WARMUP)
                _report(name, await _times(client, url, REQUESTS))
            weight = len((await client.get("/ui/")).content)
            for asset in ("/ui/static/htmx-2.0.11.min.js", "/ui/static/ui.css", "/ui/static/favicon.svg"):
                weight += len((await client.get(asset)).content)
    print(f"runs page weight (HTML + JS + CSS + icon, uncompressed): {weight / 1024:.1f} KiB")


# Needles for --text on descriptions "RNA-seq sample S<rowid> lane <rowid % 8>", plus " tumour" on
# every 100th run and " zebrafish" on every 100,000th (bench/NOTES.md fills them): rare, many, all,
# none, and one too short for a trigram index.
NEEDLES = {
    "rare (10 runs)": "zebrafish",
    "one run": "S123456",
    "1% (9,990 runs)": "TUMOUR",
    "every run": "sample",
    "none": "no-such-text",
    "2 characters (111,111 runs)": "S9",
}
TEXT_REQUESTS = 5


async def measure_text(data_dir: Path) -> None:
    """The runs page searching descriptions: p50 and max of a few requests per needle."""
    app = create_app(Settings(data_dir=data_dir, backends=["demo"], log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            for name, needle in NEEDLES.items():
                url = f"/ui/?text={needle}"
                await _times(client, url, 1)
                times = await _times(client, url, TEXT_REQUESTS)
                print(f"text={needle} ({name}): p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--only", default="", help="time only the pages whose name contains this")
    parser.add_argument("--text", action="store_true", help="the description search, per needle")
    args = parser.parse_args()
    asyncio.run(measure_text(args.data_dir) if args.text else measure(args.data_dir, args.only))


if __name__ == "__main__":
    main()
