"""``flowdeck datasets upload|register|list|get``: inputs a job or a request can name."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowdeck.cli.client_http import UsageError, checked, http_client, show_one, show_page
from flowdeck.cli.output import emit

_COLUMNS = ["id", "name", "research_group", "size", "uri", "created_at"]


def datasets_upload(args: argparse.Namespace) -> int:
    """Upload a local file into flowdeck's storage as a new dataset."""
    path = Path(args.file)
    fields = {k: v for k, v in (("name", args.name or path.name), ("research_group", args.group)) if v}
    if args.media_type:
        fields["media_type"] = args.media_type
    with path.open("rb") as handle, http_client(args) as client:
        files = {"file": (path.name, handle, args.media_type or "application/octet-stream")}
        body = checked(client.post("/datasets", data=fields, files=files, timeout=None))
    emit(args, body, [body], _COLUMNS, detail=True)
    return 0


def datasets_register(args: argparse.Namespace) -> int:
    """Register data that lives elsewhere (a URI or a Galaxy dataset id)."""
    if bool(args.uri) == bool(args.galaxy_id):
        raise UsageError("give --uri URI or --galaxy-id ID")
    wanted = (("research_group", args.group), ("uri", args.uri), ("galaxy_dataset_id", args.galaxy_id),
              ("checksum", args.checksum), ("size", args.size), ("media_type", args.media_type))  # fmt: skip
    body = {"name": args.name, **{k: v for k, v in wanted if v is not None}}
    show_one(args, "POST", "/datasets", _COLUMNS, json=body)
    return 0


def datasets_list(args: argparse.Namespace) -> int:
    filters = {"research_group": args.group, "name": args.name, "owner": args.owner, "page_token": args.page_token}
    return show_page(args, "/datasets", "datasets", _COLUMNS, **filters)


def datasets_get(args: argparse.Namespace) -> int:
    show_one(args, "GET", f"/datasets/{args.dataset_id}", _COLUMNS)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck datasets``."""
    datasets = sub.add_parser("datasets", help="registered input data").add_subparsers(
        dest="datasets_command", required=True
    )
    p = datasets.add_parser("upload", parents=[common], help="upload a local file as a dataset")
    p.add_argument("file")
    p.add_argument("--name", help="default: the file's name")
    p.add_argument("--group", help="research group")
    p.add_argument("--media-type")
    p.set_defaults(func=datasets_upload)
    p = datasets.add_parser("register", parents=[common], help="register data by URI or Galaxy dataset id")
    p.add_argument("--name", required=True)
    p.add_argument("--uri", help="s3://, https://, file://…")
    p.add_argument("--galaxy-id", help="a Galaxy dataset id")
    p.add_argument("--group", help="research group")
    p.add_argument("--checksum")
    p.add_argument("--size", type=int)
    p.add_argument("--media-type")
    p.set_defaults(func=datasets_register)
    p = datasets.add_parser("list", parents=[common], help="datasets you may see, newest first")
    p.add_argument("--group", help="research group")
    p.add_argument("--name")
    p.add_argument("--owner")
    p.add_argument("--limit", type=int, default=50, help="datasets per page")
    p.add_argument("--page-token", help="the next page (as printed after 'more:')")
    p.set_defaults(func=datasets_list)
    p = datasets.add_parser("get", parents=[common], help="one dataset")
    p.add_argument("dataset_id")
    p.set_defaults(func=datasets_get)
