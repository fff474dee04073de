"""Opaque page tokens for keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.requests import RequestSummary
from flowdeck.domain.runs import RunRecord, RunSummary
from flowdeck.errors import InvalidInput

if TYPE_CHECKING:
    from flowdeck.services.core.context import AppContext

_Item = TypeVar("_Item", RowMapping, RunRecord, RunSummary, RequestSummary, DatasetRecord)
# fetch(conn, limit, after): up to ``limit`` rows newest first, after the (created_at, id) given.
Fetch = Callable[[AsyncConnection, int, tuple[datetime, str] | None], Awaitable[list[_Item]]]


def encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> dict[str, Any]:
    """The payload of a token made by :func:`encode`; InvalidInput if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidInput("page_token is not valid") from None
    if not isinstance(payload, dict):
        raise InvalidInput("page_token is not valid")
    return payload


def encode_run_position(created_at: datetime, run_id: str) -> str:
    return encode({"c": created_at.isoformat(), "i": run_id})


def decode_run_position(token: str) -> tuple[datetime, str]:
    payload = decode(token)
    try:
        created = datetime.fromisoformat(payload["c"])
        run_id = payload["i"]
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("page_token is not valid") from None
    if created.tzinfo is None or not isinstance(run_id, str) or "\x00" in run_id:
        raise InvalidInput("page_token is not valid")
    return created, run_id


def encode_position(position: int) -> str:
    return encode({"p": position})


def decode_position(token: str) -> int:
    payload = decode(token)
    position = payload.get("p")
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**31:
        raise InvalidInput("page_token is not valid")
    return position


def page_size(requested: int | None, default: int, maximum: int) -> int:
    """The page size to use, or InvalidInput when it is out of range."""
    if requested is None:
        return default
    if requested < 1 or requested > maximum:
        raise InvalidInput(f"page_size must be between 1 and {maximum}")
    return requested


async def newest_first(
    services: AppContext, requested_size: int | None, token: str | None, fetch: Fetch[_Item]
) -> tuple[list[_Item], str]:
    """One keyset page of rows ordered by (created_at, id) descending, and the next page's token ('' at the end)."""
    size = page_size(requested_size, services.settings.default_page_size, services.settings.max_page_size)
    after = decode_run_position(token) if token else None
    rows = await services.db.read_aside(lambda conn: fetch(conn, size + 1, after))
    following = encode_run_position(*_position(rows[size - 1])) if len(rows) > size else ""
    return rows[:size], following


def _position(item: RowMapping | RunRecord | RunSummary | RequestSummary | DatasetRecord) -> tuple[datetime, str]:
    """Where a page ends: the (created_at, id) of its last item."""
    if isinstance(item, RunRecord | RunSummary | RequestSummary | DatasetRecord):
        return item.created_at, item.id
    return item["created_at"], item["id"]
