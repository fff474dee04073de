"""``flowdeck requests submit|list|get|cancel``: one pipeline over many samples (seed 001).

``submit --sample-sheet FILE`` sends the sheet as it is (CSV or TSV); ``--watch`` follows the request
sample by sample until every run has ended, and exits 1 if the request or any of its runs failed.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from flowdeck.cli.client_http import (
    TERMINAL,
    ClientError,
    UsageError,
    call,
    checked,
    http_client,
    json_argument,
    show_one,
    show_page,
)
from flowdeck.cli.output import Live, emit

_COLUMNS = ["request_id", "state", "pipeline_name", "total_runs", "research_group", "created_at"]
_RUN_COLUMNS = ["request_index", "sample_id", "run_id", "state", "error_message"]
_PAGE = 500


def _form(args: argparse.Namespace) -> dict[str, str]:
    fields = {"pipeline_name": args.pipeline, "strict": "false" if args.relaxed else "true"}
    if args.params:
        params = json_argument(args.params, "--params")
        if not isinstance(params, dict):
            raise UsageError("--params must be a JSON object")
        fields["parameters"] = json.dumps(params)
    optional = (("pipeline_version", args.version), ("research_group", args.group), ("description", args.description))
    fields.update({k: v for k, v in optional if v is not None})
    return fields


def requests_submit(args: argparse.Namespace) -> int:
    sheet = Path(args.sample_sheet)
    kind = "text/tab-separated-values" if sheet.suffix.lower() in (".tsv", ".tab") else "text/csv"
    files = {"samplesheet": (sheet.name, sheet.read_bytes(), kind)}
    with http_client(args) as client:
        body = checked(client.post("/requests", data=_form(args), files=files))
    emit(args, body, [body], _COLUMNS, detail=True)
    return watch_request(args, body["request_id"]) if args.watch else 0


def requests_list(args: argparse.Namespace) -> int:
    filters = {"state": args.state, "pipeline_name": args.pipeline, "research_group": args.group,
               "page_token": args.page_token}  # fmt: skip
    return show_page(args, "/requests", "requests", _COLUMNS, **filters)


def requests_get(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("page_size", args.limit), ("page_token", args.page_token)) if v is not None}
    body = call(args, "GET", f"/requests/{args.request_id}", params=params)
    if args.output != "table":
        emit(args, body, [], [])
        return watch_request(args, args.request_id) if args.watch else 0
    summary = {k: v for k, v in body.items() if k not in ("runs", "next_page_token")}
    emit(args, summary, [], [], detail=True)
    print()
    emit(args, body, body["runs"], _RUN_COLUMNS, more=body.get("next_page_token"))
    return watch_request(args, args.request_id) if args.watch else 0


def requests_cancel(args: argparse.Namespace) -> int:
    show_one(args, "POST", f"/requests/{args.request_id}/cancel", _COLUMNS)
    return 0


class _Progress:
    """What ``--watch`` knows of a request: its state and every run's, by sample."""

    def __init__(self, client: Any, request_id: str) -> None:
        self.client, self.request_id = client, request_id
        self.request: dict[str, Any] = {}
        self.runs: dict[str, dict[str, Any]] = {}

    def reload(self, fresh: bool = False) -> None:
        """Read the request and all its runs again (at start, and when a run is new to us). A run's
        state comes from its events once we have seen one; ``fresh``: only from its events (they are
        replayed from the first, and the database's newer state would otherwise go back and forth)."""
        token: str | None = ""
        while token is not None:
            params = {"page_size": _PAGE, **({"page_token": token} if token else {})}
            body = checked(self.client.get(f"/requests/{self.request_id}", params=params))
            for run in body["runs"]:
                known = self.runs.get(run["run_id"])
                state = known["state"] if known else None if fresh else run["state"]
                self.runs[run["run_id"]] = {**run, "state": state}
            token = body["next_page_token"] or None
        self.request = body

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("run_id") is None:
            self.reload()  # expansion made runs (or failed): the request row says how many
            self.request["state"] = event.get("to_state") or self.request["state"]
            return
        if event["run_id"] not in self.runs:
            self.reload()
        if event.get("to_state") and event["run_id"] in self.runs:
            self.runs[event["run_id"]]["state"] = event["to_state"]

    def finished(self) -> bool:
        if self.request["state"] == "failed":
            return True
        ended = [r for r in self.runs.values() if r["state"] in TERMINAL]
        return self.request["state"] == "submitted" and len(ended) == (self.request.get("total_runs") or 0)

    def failed(self) -> bool:
        return self.request["state"] == "failed" or any(r["state"] != "COMPLETE" for r in self.runs.values())

    def lines(self) -> tuple[str, list[str]]:
        counts = Counter(r["state"] or "-" for r in self.runs.values())
        done = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        total = self.request.get("total_runs") or "?"
        summary = f"request {self.request_id}  {self.request['state']:<9} runs {len(self.runs)}/{total}  {done}"
        runs = sorted(self.runs.values(), key=lambda r: r["request_index"])
        return summary, [
            f"  {r['sample_id'] or r['request_index']!s:<20} {r['run_id']}  {r['state'] or '-'}" for r in runs
        ]


def watch_request(args: argparse.Namespace, request_id: str) -> int:
    """Follow a request sample by sample until it ends: 0 when every run completed, 1 otherwise."""
    from flowdeck.cli.client_events import follow

    live = Live(args.output)
    with http_client(args) as client:
        progress = _Progress(client, request_id)
        progress.reload(fresh=True)
        for event in follow(args, {"request": request_id, "type": "state"}, 0):
            progress.apply(event)
            live.show(*progress.lines(), event=event)
            if progress.finished():
                return 1 if progress.failed() else 0
    raise ClientError("the event stream ended before the request did")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck requests``."""
    requests = sub.add_parser("requests", help="one pipeline over many samples").add_subparsers(
        dest="requests_command", required=True
    )
    p = requests.add_parser("submit", parents=[common], help="submit a pipeline over a sample sheet")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--sample-sheet", required=True, metavar="FILE", help="CSV or TSV, one sample a row")
    p.add_argument("--params", help="parameters shared by every sample: JSON text or a JSON file")
    p.add_argument("--version", help="pipeline version (default: the newest)")
    p.add_argument("--group", help="research group")
    p.add_argument("--description")
    p.add_argument("--relaxed", action="store_true", help="relaxed validation (strict by default)")
    p.add_argument("--watch", action="store_true", help="follow every sample until all end (exit 1 on a failure)")
    p.set_defaults(func=requests_submit)
    p = requests.add_parser("list", parents=[common], help="requests you may see, newest first")
    p.add_argument("--state", choices=["new", "submitted", "failed"])
    p.add_argument("--pipeline")
    p.add_argument("--group", help="research group")
    p.add_argument("--limit", type=int, default=50, help="requests per page")
    p.add_argument("--page-token", help="the next page (as printed after 'more:')")
    p.set_defaults(func=requests_list)
    p = requests.add_parser("get", parents=[common], help="a request and its runs, sample by sample")
    p.add_argument("request_id")
    p.add_argument("--limit", type=int, help="runs per page")
    p.add_argument("--page-token", help="the next page of runs")
    p.add_argument("--watch", action="store_true", help="follow it until every run has ended")
    p.set_defaults(func=requests_get)
    p = requests.add_parser("cancel", parents=[common], help="stop a request and cancel its runs")
    p.add_argument("request_id")
    p.set_defaults(func=requests_cancel)
