"""The client side of the CLI: talks HTTP to a flowdeck server.

    flowdeck runs list|get|submit|cancel|watch …
    flowdeck jobs list|get|cancel …
    flowdeck pipelines list|get|schema …
    flowdeck datasets list|get …

The server is ``--server`` or ``FLOWDECK_SERVER`` (default http://127.0.0.1:8000);
credentials come from ``FLOWDECK_TOKEN`` (an API token) or ``FLOWDECK_USER`` and
``FLOWDECK_PASSWORD`` (Basic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # At run time httpx is imported by the client commands only: ``build_parser`` imports this
    # module for every command, and httpx (with the click, rich and pygments of its own CLI) would
    # stay in the API server's memory for nothing (~5 MB).
    import httpx

WES = "/ga4gh/wes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}


class ClientError(Exception):
    """The server answered with an error; the message is its own."""


def _client(args: argparse.Namespace) -> httpx.Client:
    import httpx

    headers = {}
    auth: tuple[str, str] | None = None
    if token := os.environ.get("FLOWDECK_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    elif user := os.environ.get("FLOWDECK_USER"):
        auth = (user, os.environ.get("FLOWDECK_PASSWORD", ""))
    server = args.server or os.environ.get("FLOWDECK_SERVER", "http://127.0.0.1:8000")
    return httpx.Client(base_url=server, headers=headers, auth=auth, timeout=30)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = body.get("msg") or body.get("detail") or response.text
        except ValueError:
            message = response.text
        raise ClientError(f"{response.status_code}: {message}")
    return response.json()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as an aligned text table."""
    cells = [[str(row.get(c, "") if row.get(c) is not None else "") for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def runs_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"page_size": args.limit}
    if args.state:
        params["state"] = args.state
    with _client(args) as client:
        body = _check(client.get(f"{WES}/runs", params=params))
    print(table(body["runs"], ["run_id", "state", "start_time", "end_time"]))
    return 0


def runs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(_check(client.get(f"{WES}/runs/{args.run_id}")), indent=2))
    return 0


def runs_submit(args: argparse.Namespace) -> int:
    form = {"workflow_type": args.type, "workflow_type_version": args.type_version, "workflow_url": args.url}
    if args.params:
        form["workflow_params"] = Path(args.params).read_text() if Path(args.params).is_file() else args.params
    if args.engine:
        form["workflow_engine"] = args.engine
    if args.tag:
        form["tags"] = json.dumps(dict(t.split("=", 1) for t in args.tag))
    # A relative path is the attachment's name (tools/echo.cwl stays tools/echo.cwl for the workflow's imports).
    files = [("workflow_attachment", (_attachment_name(p), Path(p).read_bytes())) for p in args.attach]
    with _client(args) as client:
        body = _check(client.post(f"{WES}/runs", data=form, files=files or None))
    print(body["run_id"])
    if args.watch:
        args.run_id = body["run_id"]
        return runs_watch(args)
    return 0


def _attachment_name(path: str) -> str:
    given = Path(path)
    return given.name if given.is_absolute() or ".." in given.parts else given.as_posix()


def runs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _check(client.post(f"{WES}/runs/{args.run_id}/cancel"))
    print(f"cancel requested for {args.run_id}")
    return 0


def runs_watch(args: argparse.Namespace) -> int:
    """Follow a run live through the server's event stream, until it ends."""
    from flowdeck.cli.client_events import watch_run

    return watch_run(args, args.run_id)


def register(sub: Any) -> None:
    """Add the client commands to the top-level parser."""
    runs = sub.add_parser("runs", help="WES runs on a flowdeck server").add_subparsers(
        dest="runs_command", required=True
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help="server URL (default $FLOWDECK_SERVER or http://127.0.0.1:8000)")
    p = runs.add_parser("list", parents=[common], help="list runs")
    p.add_argument("--state")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=runs_list)
    for name, fn in (("get", runs_get), ("cancel", runs_cancel), ("watch", runs_watch)):
        p = runs.add_parser(name, parents=[common])
        p.add_argument("run_id")
        p.add_argument("--interval", type=float, default=2.0)
        p.set_defaults(func=fn)
    p = runs.add_parser("submit", parents=[common], help="submit a run (attach local files with --attach)")
    p.add_argument("--type", required=True, help="CWL, WDL, SMK, GALAXY, DEMO")
    p.add_argument("--type-version", required=True)
    p.add_argument("--url", required=True, help="workflow_url: an attachment's name or an allowed URL")
    p.add_argument("--params", help="workflow_params: JSON text or a JSON file")
    p.add_argument("--engine")
    p.add_argument("--tag", action="append", default=[], help="key=value")
    p.add_argument("--attach", action="append", default=[], help="a file to attach (repeat)")
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    p.add_argument("--interval", type=float, default=2.0)
    p.set_defaults(func=runs_submit)
    from flowdeck.cli import client_events

    client_events.register(sub, common)
    from flowdeck.cli import client_jobs

    client_jobs.register(sub, common)


def run(args: argparse.Namespace) -> int:
    import httpx

    try:
        return int(args.func(args))
    except ClientError as exc:
        print(f"flowdeck: {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"flowdeck: cannot reach the server: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file named on the command line: one line, no traceback
        print(f"flowdeck: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
