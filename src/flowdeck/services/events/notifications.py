"""Per-user e-mail notification preferences (docs/webhooks.md#e-mail).

Each signed-in user keeps one record: the address, and whether to be mailed when one of their
runs completes, when one fails, and for a request as a whole (one mail when all its runs have
ended, instead of one per run). The worker sends the mails from the deliveries outbox.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flowdeck.db import webhooks as webhook_rows
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, NotFound
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+|[^@\s]+@localhost")


@dataclass(frozen=True)
class Preferences:
    """What a user asks to be mailed about."""

    email: str
    on_completion: bool = False
    on_failure: bool = True
    request_summary: bool = False


def _view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("email", "on_completion", "on_failure", "request_summary")} | {
        "updated_at": row["updated_at"].isoformat()
    }


async def get(services: AppContext, principal: Principal) -> dict[str, Any]:
    """The caller's preferences, or NotFound when they set none."""
    async with services.db.read() as conn:
        row = await webhook_rows.preferences(conn, principal.name)
    if row is None:
        raise NotFound("no notification preferences set; PUT them first")
    return _view(row)


async def put(services: AppContext, principal: Principal, given: Preferences) -> dict[str, Any]:
    """Set the caller's preferences (the whole record)."""
    if len(given.email) > 320 or not _ADDRESS.fullmatch(given.email):
        raise InvalidInput(f"email {given.email[:100]!r} is not an e-mail address")
    now = utcnow()
    async with services.db.write() as conn:
        await webhook_rows.set_preferences(conn, principal.name, asdict(given), now)
    return _view(asdict(given) | {"updated_at": now})


async def delete(services: AppContext, principal: Principal) -> None:
    """Stop all e-mail to the caller."""
    async with services.db.write() as conn:
        await webhook_rows.delete_preferences(conn, principal.name)
