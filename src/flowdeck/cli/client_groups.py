"""``flowdeck usage GROUP``: a research group's runs against its share and limit, and its stored
bytes against its quota, through the API (``flowdeck groups …`` is the server-side account
administration)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from flowdeck.cli.client_http import show_one


def group_usage(args: argparse.Namespace) -> int:
    show_one(args, "GET", f"/groups/{quote(args.group, safe='')}/usage", [])
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck usage``."""
    p = sub.add_parser(
        "usage",
        parents=[common],
        help="a research group's executing and queued runs, weight and limit, stored bytes and quota",
    )
    p.add_argument("group")
    p.set_defaults(func=group_usage)
