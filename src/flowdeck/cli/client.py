"""The client side of the CLI: talks HTTP to a flowdeck server (docs/cli.md).

    flowdeck login
    flowdeck runs list|get|submit|cancel|watch …
    flowdeck jobs submit|list|get|cancel|rerun|logs|outputs|download …
    flowdeck pipelines list|show|schema …
    flowdeck requests submit|list|get|cancel …
    flowdeck datasets upload|register|list|get …
    flowdeck events …
    flowdeck webhooks add|list|get|delete|deliveries|redeliver …
    flowdeck notifications show|set|off …

The server is ``--server``, else ``FLOWDECK_SERVER``, else the one ``flowdeck login`` saved, else
http://127.0.0.1:8000. Credentials: ``FLOWDECK_TOKEN`` (an API token), else ``FLOWDECK_USER`` and
``FLOWDECK_PASSWORD`` (Basic), else the token ``flowdeck login`` saved for that same server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.cli.client_http import (
    DEFAULT_SERVER,
    WES,
    ClientError,
    UsageError,
    call,
    checked,
    http_client,
    json_argument,
    server_url,
    show_page,
)
from flowdeck.cli.output import add_output, emit, table

if TYPE_CHECKING:
    # At run time httpx is imported by the client commands only: ``build_parser`` imports this
    # module for every command, and httpx (with the click, rich and pygments of its own CLI) would
    # stay in the API server's memory for nothing (~5 MB).
    pass

__all__ = ["ClientError", "UsageError", "table"]

_RUN_COLUMNS = ["run_id", "state", "start_time", "end_time"]


def runs_list(args: argparse.Namespace) -> int:
    return show_page(args, f"{WES}/runs", "runs", _RUN_COLUMNS, state=args.state or None, page_token=args.page_token)


def runs_get(args: argparse.Namespace) -> int:
    body = call(args, "GET", f"{WES}/runs/{args.run_id}")
    row = {"run_id": body["run_id"], "state": body["state"], **(body.get("run_log") or {})}
    emit(args, body, [row], _RUN_COLUMNS, detail=True)
    return 0


def runs_submit(args: argparse.Namespace) -> int:
    form = {"workflow_type": args.type, "workflow_type_version": args.type_version, "workflow_url": args.url}
    if args.params:
        form["workflow_params"] = json.dumps(json_argument(args.params, "--params"))
    if args.engine:
        form["workflow_engine"] = args.engine
    if args.engine_params:
        form["workflow_engine_parameters"] = json.dumps(json_argument(args.engine_params, "--engine-params"))
    if args.tag:
        form["tags"] = json.dumps(dict(_pair(t, "--tag") for t in args.tag))
    # A relative path is the attachment's name (tools/echo.cwl stays tools/echo.cwl for the workflow's imports).
    files = [("workflow_attachment", (_attachment_name(p), Path(p).read_bytes())) for p in args.attach]
    with http_client(args) as client:
        body = checked(client.post(f"{WES}/runs", data=form, files=files or None))
    if args.output == "table":
        print(body["run_id"], flush=True)
    else:
        emit(args, body, [], [])
    if args.watch:
        args.run_id = body["run_id"]
        return runs_watch(args)
    return 0


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} takes key=value, not {text!r}")
    return key, value


def _attachment_name(path: str) -> str:
    given = Path(path)
    return given.name if given.is_absolute() or ".." in given.parts else given.as_posix()


def runs_cancel(args: argparse.Namespace) -> int:
    call(args, "POST", f"{WES}/runs/{args.run_id}/cancel")
    print(f"cancel requested for {args.run_id}")
    return 0


def runs_watch(args: argparse.Namespace) -> int:
    """Follow a run live through the server's event stream, until it ends."""
    from flowdeck.cli.client_events import watch_run

    return watch_run(args, args.run_id)


def common_options() -> argparse.ArgumentParser:
    """The options every client command takes: ``--server`` and ``-o``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server", help="server URL (default $FLOWDECK_SERVER, the saved login, or " + DEFAULT_SERVER + ")"
    )
    add_output(common)
    return common


def _register_runs(sub: Any, common: argparse.ArgumentParser) -> None:
    runs = sub.add_parser("runs", help="WES runs on a flowdeck server").add_subparsers(
        dest="runs_command", required=True
    )
    p = runs.add_parser("list", parents=[common], help="list runs")
    p.add_argument("--state")
    p.add_argument("--limit", type=int, default=50, help="runs per page")
    p.add_argument("--page-token", help="the next page (as printed after 'more:')")
    p.set_defaults(func=runs_list)
    for name, fn in (("get", runs_get), ("cancel", runs_cancel), ("watch", runs_watch)):
        p = runs.add_parser(name, parents=[common], help=f"{name} a run")
        p.add_argument("run_id")
        p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
        p.set_defaults(func=fn)
    p = runs.add_parser("submit", parents=[common], help="submit a run (attach local files with --attach)")
    p.add_argument("--type", required=True, help="CWL, WDL, SMK, GALAXY, DEMO")
    p.add_argument("--type-version", required=True)
    p.add_argument("--url", required=True, help="workflow_url: an attachment's name or an allowed URL")
    p.add_argument("--params", help="workflow_params: JSON text or a JSON file")
    p.add_argument("--engine")
    p.add_argument("--engine-params", help="workflow_engine_parameters: JSON text or a JSON file")
    p.add_argument("--tag", action="append", default=[], help="key=value")
    p.add_argument("--attach", action="append", default=[], help="a file to attach (repeat; relative paths kept)")
    p.add_argument("--watch", action="store_true", help="follow the run until it ends (exit 1 if it fails)")
    p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=runs_submit)


def register(sub: Any) -> None:
    """Add the client commands to the top-level parser."""
    from flowdeck.cli import (
        client_completion,
        client_datasets,
        client_events,
        client_groups,
        client_jobs,
        client_login,
        client_pipelines,
        client_requests,
        client_webhooks,
    )

    common = common_options()
    client_login.register(sub, common)
    _register_runs(sub, common)
    for module in (
        client_jobs,
        client_pipelines,
        client_requests,
        client_datasets,
        client_events,
        client_groups,
        client_webhooks,
    ):
        module.register(sub, common)
    client_completion.register(sub)


def run(args: argparse.Namespace) -> int:
    """Run a client command: a server's error is one line and exit 1, a bad argument exit 2."""
    import httpx

    try:
        return int(args.func(args))
    except ClientError as exc:
        print(f"flowdeck: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"flowdeck: {exc}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        print(f"flowdeck: cannot reach {server_url(args)}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `flowdeck jobs list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # a file named on the command line: one line, no traceback
        print(f"flowdeck: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
