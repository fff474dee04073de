"""``flowdeck jobs list|get|cancel``: the /jobs API from the command line (``-o table|json``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flowdeck.cli.client import _check, _client, table

_COLUMNS = ["id", "state", "pipeline_name", "research_group", "created_at"]


def _show(args: argparse.Namespace, body: Any, rows: list[dict[str, Any]]) -> None:
    print(json.dumps(body, indent=2) if args.output == "json" else table(rows, _COLUMNS))


def jobs_list(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("state", args.state), ("pipeline_name", args.pipeline)) if v is not None}
    with _client(args) as client:
        body = _check(client.get("/jobs", params={**params, "page_size": args.limit}))
    _show(args, body, body["jobs"])
    return 0


def jobs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        body = _check(client.get(f"/jobs/{args.job_id}"))
    _show(args, body, [body])
    if args.watch:
        from flowdeck.cli.client_events import watch_run

        return watch_run(args, args.job_id)
    return 0


def jobs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        body = _check(client.post(f"/jobs/{args.job_id}/cancel"))
    _show(args, body, [body])
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck jobs``."""
    jobs = sub.add_parser("jobs", help="jobs on a flowdeck server").add_subparsers(dest="jobs_command", required=True)
    output = argparse.ArgumentParser(add_help=False, parents=[common])
    output.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = jobs.add_parser("list", parents=[output], help="list jobs")
    p.add_argument("--state")
    p.add_argument("--pipeline")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=jobs_list)
    p = jobs.add_parser("get", parents=[output], help="show a job (--watch: follow it until it ends)")
    p.add_argument("job_id")
    p.add_argument("--watch", action="store_true")
    p.set_defaults(func=jobs_get)
    p = jobs.add_parser("cancel", parents=[output], help="cancel a job")
    p.add_argument("job_id")
    p.set_defaults(func=jobs_cancel)
