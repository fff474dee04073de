"""``flowdeck jobs …``: the /jobs API (seeds 000 and 002) from the command line."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from flowdeck.cli.client_http import WES, ClientError, UsageError, call, checked, http_client, json_argument, show_page
from flowdeck.cli.output import emit

_COLUMNS = ["id", "state", "pipeline_name", "research_group", "created_at"]
_FILE_COLUMNS = ["index", "name", "size", "checksum"]


def _show(args: argparse.Namespace, body: Any) -> None:
    emit(args, body, [body], _COLUMNS, detail=True)


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    params = json_argument(args.params, "--params") if args.params else {}
    if not isinstance(params, dict):
        raise UsageError("--params must be a JSON object")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes name=value, not {item!r}")
        params[key] = json_argument(value, "--set") if value[:1] in "{[" else _scalar(value)
    return params


def _scalar(text: str) -> Any:
    """``--set`` values: numbers and true/false as JSON, anything else as text."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def submit_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /jobs body: seed 002 (``--pipeline``) or seed 000 (``--workflow`` and ``--dataset``)."""
    if bool(args.pipeline) == bool(args.workflow):
        raise UsageError("give --pipeline NAME (a catalog pipeline) or --workflow NAME (a Galaxy workflow)")
    body: dict[str, Any] = {"parameters": _parameters(args)}
    if args.pipeline:
        body["pipeline_name"] = args.pipeline
    else:
        body.update(workflow_name=args.workflow, overwrite=args.overwrite)
    optional = (("dataset_id", args.dataset), ("research_group", args.group), ("description", args.description))
    body.update({key: value for key, value in optional if value is not None})
    return body


def jobs_submit(args: argparse.Namespace) -> int:
    with http_client(args) as client:
        answer = client.post("/jobs", json=submit_body(args), params={"dry_run": "true"} if args.dry_run else None)
        body = checked(answer)
    _show(args, body)
    if args.watch and not args.dry_run:
        return _watch(args, body["id"])
    return 0


def jobs_list(args: argparse.Namespace) -> int:
    filters = {"state": args.state, "pipeline_name": args.pipeline, "dataset_id": args.dataset,
               "research_group": args.group, "page_token": args.page_token}  # fmt: skip
    return show_page(args, "/jobs", "jobs", _COLUMNS, **filters)


def jobs_get(args: argparse.Namespace) -> int:
    body = call(args, "GET", f"/jobs/{args.job_id}")
    _show(args, body)
    return _watch(args, args.job_id) if args.watch else 0


def _watch(args: argparse.Namespace, job_id: str) -> int:
    from flowdeck.cli.client_events import watch_run

    return watch_run(args, job_id)


def jobs_cancel(args: argparse.Namespace) -> int:
    body = call(args, "POST", f"/jobs/{args.job_id}/cancel")
    _show(args, body)
    return 0


def jobs_rerun(args: argparse.Namespace) -> int:
    body = call(args, "POST", f"/jobs/{args.job_id}/rerun")
    _show(args, body)
    return _watch(args, body["id"]) if args.watch else 0


def jobs_logs(args: argparse.Namespace) -> int:
    """The run's (or one task's) stdout or stderr, as the engine wrote it."""
    task = f"/tasks/{args.task}" if args.task else ""
    with http_client(args) as client:
        response = client.get(f"{WES}/runs/{args.job_id}{task}/logs/{args.stream}")
        if response.status_code >= 400:
            checked(response)
    sys.stdout.write(response.text)
    return 0


def _outputs(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = call(args, "GET", f"{WES}/runs/{args.job_id}/outputs")
    for index, item in enumerate(body["files"]):
        item.setdefault("index", index)
    return body


def jobs_outputs(args: argparse.Namespace) -> int:
    body = _outputs(args)
    emit(args, body, body["files"], _FILE_COLUMNS)
    return 0


def _local_name(name: str, index: int) -> Path:
    """Where output ``name`` lands under the target folder: its relative path, made safe."""
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".", "..")]
    return Path(*parts) if parts else Path(f"output-{index}")


def jobs_download(args: argparse.Namespace) -> int:
    """Download the job's output files (all, or those given by index) into ``--dir``."""
    files = _outputs(args)["files"]
    chosen = files if not args.index else [f for f in files if f["index"] in args.index]
    if missing := set(args.index) - {f["index"] for f in files}:
        raise ClientError(f"job {args.job_id} has no output {min(missing)} (it has {len(files)})")
    with http_client(args) as client:
        for item in chosen:
            target = Path(args.dir) / _local_name(item.get("name") or "", item["index"])
            _fetch(client, item["url"], target)
            print(target, flush=True)
    return 0


def _fetch(client: Any, url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with client.stream("GET", url) as response:
        if response.status_code >= 400:
            response.read()
            checked(response)
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    partial.replace(target)  # a cut download never leaves a file that looks whole


def _job_command(jobs: Any, output: argparse.ArgumentParser, name: str, fn: Any, text: str) -> Any:
    p = jobs.add_parser(name, parents=[output], help=text, description=text)
    p.add_argument("job_id")
    p.set_defaults(func=fn)
    return p


def _register_submit(jobs: Any, output: argparse.ArgumentParser) -> None:
    p = jobs.add_parser("submit", parents=[output], help="submit a job (a pipeline, or a Galaxy workflow on a dataset)")
    p.add_argument("--pipeline", help="catalog pipeline name (seed 002)")
    p.add_argument("--workflow", help="Galaxy workflow name (seed 000; with --dataset)")
    p.add_argument("--dataset", help="dataset id")
    p.add_argument("--overwrite", action="store_true", help="seed 000: replace the dataset's earlier job")
    p.add_argument("--params", help="parameters: JSON text or a JSON file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="one parameter (repeat)")
    p.add_argument("--group", help="research group")
    p.add_argument("--description")
    p.add_argument("--dry-run", action="store_true", help="validate and show the resolved job, store nothing")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends (exit 1 if it fails)")
    p.set_defaults(func=jobs_submit)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck jobs``."""
    jobs = sub.add_parser("jobs", help="jobs on a flowdeck server").add_subparsers(dest="jobs_command", required=True)
    _register_submit(jobs, common)
    p = jobs.add_parser("list", parents=[common], help="list jobs, newest first")
    p.add_argument("--state", help="queued, in_progress, completed, failed, canceled or a WES state")
    p.add_argument("--pipeline")
    p.add_argument("--dataset")
    p.add_argument("--group", help="research group")
    p.add_argument("--limit", type=int, default=50, help="jobs per page")
    p.add_argument("--page-token", help="the next page (as printed after 'more:')")
    p.set_defaults(func=jobs_list)
    _job_command(jobs, common, "get", jobs_get, "show a job").add_argument(
        "--watch", action="store_true", help="follow it until it ends (exit 1 if it fails)"
    )
    _job_command(jobs, common, "cancel", jobs_cancel, "cancel a job")
    _job_command(jobs, common, "rerun", jobs_rerun, "run a job again as a new job").add_argument(
        "--watch", action="store_true", help="follow the new job until it ends"
    )
    p = _job_command(jobs, common, "logs", jobs_logs, "print a job's stdout (or stderr)")
    p.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    p.add_argument("--task", help="one task's log instead of the run's")
    _job_command(jobs, common, "outputs", jobs_outputs, "list a job's output files")
    p = _job_command(jobs, common, "download", jobs_download, "download a job's output files")
    p.add_argument("index", type=int, nargs="*", help="only these outputs (as numbered by 'outputs')")
    p.add_argument("-d", "--dir", default=".", help="target folder (default: here)")
