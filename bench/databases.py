"""Submit throughput and list latency of ``flowdeck api`` on SQLite, PostgreSQL and MariaDB, side by side.

    .venv/bin/python bench/databases.py [--reps 3] [--runs 512] [--only sqlite,postgresql,mariadb]

Each repetition starts a fresh database (SQLite: a new data dir; PostgreSQL and MariaDB: a new
database on a throwaway server started as the tests start theirs, tests/support/), starts
``flowdeck api`` on it (which migrates it), submits ``--runs`` WES runs with ``hey`` (the same
multipart body as bench/run.py), then reads the newest page (``GET /runs?page_size=100``). The
demo backend only; no worker runs, so the runs stay QUEUED. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

CONCURRENCY = 16
WARMUP = 32
LIST_REQUESTS = 160
LIST_CONCURRENCY = 8


def _urls(only: list[str]) -> dict[str, Callable[[], str | None]]:
    """A function per database giving a fresh database URL (None: SQLite in the data dir)."""
    makers: dict[str, Callable[[], str | None]] = {"sqlite": lambda: None}
    if "postgresql" in only:
        from tests.support.postgres import shared_server as postgres

        makers["postgresql"] = lambda: postgres().create_database()
    if "mariadb" in only:
        from tests.support.mariadb import shared_server as mariadb

        makers["mariadb"] = lambda: mariadb().create_database()
    return {name: makers[name] for name in only}


def _one(work: Path, url: str | None, runs: int, body: Path, content_type: str) -> tuple[common.Load, common.Load]:
    port = common.free_port()
    env = common.flowdeck_env(work, port)
    if url is not None:
        env["FLOWDECK_DATABASE_URL"] = url
    command = [str(common.BIN / "flowdeck"), "api"]
    with common.serve(command, env, port, common.WES + "/service-info") as server:
        runs_url = server.url + common.WES + "/runs"
        common.hey(runs_url, WARMUP, CONCURRENCY, body=body, content_type=content_type)
        submit = common.hey(runs_url, runs, CONCURRENCY, body=body, content_type=content_type)
        if submit.statuses != {200: runs}:
            raise RuntimeError(f"submit answered {submit.statuses}")
        listed = common.hey(runs_url + "?page_size=100", LIST_REQUESTS, LIST_CONCURRENCY)
        if listed.statuses != {200: LIST_REQUESTS}:
            raise RuntimeError(f"list answered {listed.statuses}")
    return submit, listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=512, help="submissions per repetition (a multiple of 16)")
    parser.add_argument("--only", default="sqlite,postgresql,mariadb")
    args = parser.parse_args()
    load_before = common.load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-db-") as tmp:
        body = Path(tmp) / "submit.multipart"
        content_type = common.multipart_body(body)
        for name, fresh in _urls(args.only.split(",")).items():
            results = [
                _one(Path(tmp) / f"{name}-{rep}", fresh(), args.runs, body, content_type) for rep in range(args.reps)
            ]
            submit_rps = [s.requests_per_second for s, _ in results]
            list_p50 = [li.p50_ms for _, li in results]
            list_p99 = [li.p99_ms for _, li in results]
            rows.append(
                f"| {name} | {common.median(submit_rps):.0f} ({', '.join(f'{v:.0f}' for v in submit_rps)}) "
                f"| {common.median(list_p50):.1f} | {common.median(list_p99):.1f} |"
            )
    print(
        f"`bench/databases.py {' '.join(sys.argv[1:])}`; load average {load_before} before, "
        f"{common.load_average()} after; medians of {args.reps} repetitions.\n"
    )
    print(f"| database | submit req/s, c={CONCURRENCY} (each rep) | list p50 ms (c={LIST_CONCURRENCY}) | list p99 ms |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
