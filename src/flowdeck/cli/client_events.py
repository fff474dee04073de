"""The CLI's side of GET /events: ``flowdeck events`` and the ``--watch`` of run commands.

A dropped connection is resumed with ``Last-Event-ID``, so nothing is missed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

from flowdeck.cli.client_http import TERMINAL, WES, ClientError, checked, http_client
from flowdeck.cli.output import Live, dumps

_RETRIES = 5


def sse(lines: Iterator[str], heartbeats: bool = False) -> Iterator[dict[str, Any]]:
    """The events of a ``text/event-stream`` body; a comment line (the server's keep-alive) is an
    empty dict when ``heartbeats``, else skipped."""
    data: list[str] = []
    for line in lines:
        if line.startswith(":"):
            if heartbeats:
                yield {}
            continue
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def follow(
    args: argparse.Namespace, params: dict[str, Any], after: int | None = None, heartbeats: bool = False
) -> Iterator[dict[str, Any]]:
    """Events matching ``params`` from after ``after`` (None: from now), reconnecting as needed
    (``heartbeats``: an empty dict for each keep-alive, to refresh a live view)."""
    import httpx

    failures = 0
    with http_client(args) as client:
        while True:
            headers = {} if after is None else {"Last-Event-ID": str(after)}
            try:
                with client.stream("GET", "/events", params=params, headers=headers, timeout=None) as response:
                    if response.status_code >= 400:
                        response.read()
                        checked(response)
                    for event in sse(response.iter_lines(), heartbeats):
                        failures = 0
                        if event:
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


def _event_text(event: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(event)  # one object a line (JSON Lines), for a pipe into jq
    return "---\n" + dumps(event, "yaml") if fmt == "yaml" else _line(event)


def events(args: argparse.Namespace) -> int:
    """Print events as they happen (``-o json``: one JSON object a line; ``-o yaml``: one document
    each) until interrupted."""
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
            print(_event_text(event, args.output), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def _task_line(task: dict[str, Any]) -> str:
    if task.get("end_time"):
        state = "done" if task.get("exit_code") in (0, None) else f"failed (exit {task['exit_code']})"
    else:
        state = "running" if task.get("start_time") else "waiting"
    return f"  {task.get('name') or task['id']:<32} {state}"


def _run_line(run_id: str, state: str, tasks: list[dict[str, Any]]) -> str:
    done = sum(1 for t in tasks if t.get("end_time"))
    return f"{run_id}  {state:<14} tasks {done}/{len(tasks)}"


def watch_run(args: argparse.Namespace, run_id: str) -> int:
    """Follow one run from its first event until it ends, task by task: 0 when it completed, 1 otherwise."""
    live = Live(getattr(args, "output", "table"))
    state: str | None = None
    with http_client(args) as client:
        checked(client.get(f"{WES}/runs/{run_id}/status"))  # a missing run is a 404 now, not a silent wait
        for event in follow(args, {"run": run_id}, 0, heartbeats=live.tty):
            if event and event["to_state"] is None:
                continue
            state = event["to_state"] if event else state
            if state is None:
                continue
            # A run has no tasks before it runs; and a replayed QUEUED must not show today's tasks.
            waiting = state in ("QUEUED", "INITIALIZING")
            tasks = [] if waiting else checked(client.get(f"{WES}/runs/{run_id}/tasks"))["task_logs"]
            live.show(_run_line(run_id, state, tasks), [_task_line(t) for t in tasks], event)
            if event and state in TERMINAL:
                return 0 if state == "COMPLETE" else 1
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
    p.set_defaults(func=events)
