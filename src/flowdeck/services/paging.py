"""Opaque page tokens for keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from flowdeck.errors import InvalidInput


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
