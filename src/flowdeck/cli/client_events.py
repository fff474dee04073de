"""The CLI's side of GET /events: ``flowdeck events`` and the ``--watch`` of run commands.

A dropped connection is resumed with ``Last-Event-ID``, so nothing is missed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

from flowdeck.cli.client import TERMINAL, WES, ClientError, _check, _client

_RETRIES = 5


def sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The events of a ``text/event-stream`` body (comment lines skipped)."""
    data: list[str] = []
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def follow(args: argparse.Namespace, params: dict[str, Any], after: int | None = None) -> Iterator[dict[str, Any]]:
    """Events matching ``params`` from after ``after`` (None: from now), reconnecting as needed."""
    import httpx

    failures = 0
    with _client(args) as client:
        while True:
            headers = {} if after is None else {"Last-Event-ID": str(after)}
            try:
                with client.stream("GET", "/events", params=params, headers=headers, timeout=None) as response:
                    if response.status_code >= 400:
                        response.read()
                        _check(response)
                    for event in sse(response.iter_lines()):
                        failures = 0
                        after = int(event["id"])
                        yield event
            except httpx.TransportError:
                failures += 1
                if failures > _RETRIES:
                    raise
                time.sleep(min(2**failures * 0.2, 5))


def _line(event: dict[str, Any]) -> str:
    subject = f"run {event['run_id']}" if event["run_id"] else f"request {event['request_id']}"
    change = f"{event['from_state'] or '-'} -> {event['to_state']}" if event["to_state"] else event["type"]
    reason = f"  ({event['reason']})" if event["reason"] else ""
    return f"{event['at']}  #{event['id']}  {subject}  {change}{reason}"


def events(args: argparse.Namespace) -> int:
    """Print events as they happen (``-o json``: one JSON object a line) until interrupted."""
    params = {
        key: value
        for key, value in (
            ("run", args.run),
            ("request", args.request),
            ("pipeline", args.pipeline),
            ("group", args.group),
            ("type", args.type),
        )
        if value is not None
    }
    try:
        for event in follow(args, params, args.since):
            print(json.dumps(event) if args.output == "json" else _line(event), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def watch_run(args: argparse.Namespace, run_id: str) -> int:
    """Follow one run from its first event until it ends: 0 when it completed, 1 otherwise."""
    with _client(args) as client:
        _check(client.get(f"{WES}/runs/{run_id}/status"))  # a missing run is a 404 now, not a silent wait
        for event in follow(args, {"run": run_id}, 0):
            if event["to_state"] is None:
                continue
            tasks = _check(client.get(f"{WES}/runs/{run_id}/tasks"))["task_logs"]
            done = sum(1 for t in tasks if t.get("end_time"))
            print(f"{run_id}  {event['to_state']:<14} tasks {done}/{len(tasks)}", flush=True)
            if event["to_state"] in TERMINAL:
                return 0 if event["to_state"] == "COMPLETE" else 1
    raise ClientError("the event stream ended before the run did")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck events``."""
    p = sub.add_parser("events", parents=[common], help="follow the server's events live")
    p.add_argument("--run")
    p.add_argument("--request")
    p.add_argument("--pipeline")
    p.add_argument("--group", help="research group")
    p.add_argument("--type", choices=["state", "cancel"])
    p.add_argument("--since", type=int, help="start after this event id (0: from the first)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=events)
