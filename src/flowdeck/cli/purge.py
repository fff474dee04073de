"""``flowdeck purge``: delete ended runs past retention, with their stored files (server side)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from typing import Any

from flowdeck.settings import Settings


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete (or with --dry-run list) ended runs older than --older-than-days (default: retention_days)."""
    from flowdeck.errors import ConfigurationError
    from flowdeck.services.core.context import AppContext
    from flowdeck.services.runs import purge

    settings = Settings()
    days = args.older_than_days if args.older_than_days is not None else settings.retention_days
    if days is None:
        raise ConfigurationError("say how old: --older-than-days N, or set FLOWDECK_RETENTION_DAYS")
    states = args.state or settings.retention_states

    async def main() -> list[purge.Deleted]:
        services = AppContext.create(settings)
        try:
            return await purge.purge(
                services, timedelta(days=days), states, dry_run=args.dry_run, actor="flowdeck purge"
            )
        finally:
            await services.close()

    gone = asyncio.run(main())
    for item in gone:
        print(f"{item.run_id}\t{item.files} files\t{item.bytes} bytes")
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(gone)} runs, {sum(g.bytes for g in gone)} stored bytes")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("purge", help="delete ended runs past retention, with their stored files")
    p.add_argument("--older-than-days", type=float, help="ended more than this many days ago (default: retention_days)")
    p.add_argument("--state", action="append", help="only runs in this ended state (repeat; default: retention_states)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_purge)
