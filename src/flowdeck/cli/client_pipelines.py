"""``flowdeck pipelines list|show|schema``: the pipeline catalog the caller may run."""

from __future__ import annotations

import argparse
from typing import Any

from flowdeck.cli.client_http import call
from flowdeck.cli.output import dumps, emit

_COLUMNS = ["name", "version", "backend", "description"]


def pipelines_list(args: argparse.Namespace) -> int:
    body = call(args, "GET", "/pipelines")
    emit(args, body, body["pipelines"], _COLUMNS)
    return 0


def pipelines_show(args: argparse.Namespace) -> int:
    body = call(args, "GET", f"/pipelines/{args.name}")
    shown = {k: v for k, v in body.items() if k not in ("all_versions", "links")}
    emit(args, shown if args.output == "table" else body, [], [], detail=True)
    return 0


def pipelines_schema(args: argparse.Namespace) -> int:
    """The parameters' JSON Schema (JSON unless ``-o yaml``: a schema is no table)."""
    params = {"version": args.version} if args.version else None
    body = call(args, "GET", f"/pipelines/{args.name}/schema", params=params)
    print(dumps(body, "yaml" if args.output == "yaml" else "json"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck pipelines``."""
    pipelines = sub.add_parser("pipelines", help="the pipeline catalog").add_subparsers(
        dest="pipelines_command", required=True
    )
    pipelines.add_parser("list", parents=[common], help="pipelines you may run").set_defaults(func=pipelines_list)
    p = pipelines.add_parser("show", parents=[common], help="one pipeline, with its versions")
    p.add_argument("name")
    p.set_defaults(func=pipelines_show)
    p = pipelines.add_parser("schema", parents=[common], help="a pipeline's parameter JSON Schema")
    p.add_argument("name")
    p.add_argument("--version", help="a given version (default: the newest)")
    p.set_defaults(func=pipelines_schema)
