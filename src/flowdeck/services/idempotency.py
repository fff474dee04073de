"""Idempotency keys: a retried POST returns its first answer instead of creating again.

A key is scoped to the caller and the endpoint. The first use inserts the key
row with a hash of the body, in its own transaction, before anything is
created: the primary key decides between concurrent first uses, and the loser
waits for the winner's answer. The answer (status and body) is stored once
known and replayed to every later use with the same body; a different body is
a 409. A use that fails with an error is forgotten, so it can be retried.
Keys older than ``idempotency_ttl_seconds`` may be reused; a key left without
an answer for ``IN_FLIGHT_SECONDS`` (its process died) may be taken over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flowdeck.db import idempotency as key_rows
from flowdeck.errors import Conflict, InvalidInput
from flowdeck.services.clock import utcnow
from flowdeck.services.context import Services
from flowdeck.services.runs import NewRun

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
IN_FLIGHT_SECONDS = 60.0
WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered; ``replayed`` when it is the stored first answer."""

    status_code: int
    body: Any
    replayed: bool = False


@dataclass(frozen=True)
class Use:
    """One use of a key: whose, on which endpoint, with which body."""

    scope: str
    endpoint: str
    key: str
    body_hash: str


def fingerprint(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_run(new: NewRun) -> str:
    """A WES submission's hash: its fields, and its attachments by name and digest."""
    fields = {k: v for k, v in new.__dict__.items() if k != "attachments"}
    files = [(a.name, hashlib.sha256(a.content).hexdigest()) for a in new.attachments]
    return fingerprint({"fields": fields, "attachments": files})


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


async def once(services: Services, use: Use, create: Callable[[], Awaitable[Answer]]) -> Answer:
    """Call ``create`` unless ``use``'s key already has an answer."""
    stored = await _begin(services, use)
    if stored is not None:
        return stored
    try:
        answer = await create()
    except BaseException:
        await _forget(services, use)
        raise
    async with services.db.write() as conn:
        await key_rows.store_answer(conn, use.scope, use.endpoint, use.key, answer.status_code, answer.body)
    return answer


async def _begin(services: Services, use: Use) -> Answer | None:
    """None when this use owns the key now; the stored answer when there is one."""
    ttl = timedelta(seconds=services.settings.idempotency_ttl_seconds)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        now = utcnow()
        async with services.db.write() as conn:
            await key_rows.delete(conn, use.scope, use.endpoint, use.key, created_before=now - ttl)
            if await key_rows.try_insert(conn, use.scope, use.endpoint, use.key, use.body_hash, now):
                return None
            row = await key_rows.get(conn, use.scope, use.endpoint, use.key)
            if (
                row is not None
                and row["status_code"] is None
                and now - row["created_at"] > timedelta(seconds=IN_FLIGHT_SECONDS)
            ):
                await key_rows.delete(conn, use.scope, use.endpoint, use.key)
                continue
        if row is None:
            continue
        if row["body_hash"] != use.body_hash:
            raise Conflict(
                f"{HEADER} {use.key!r} was already used with a different request body; "
                "use a new key for a different request"
            )
        if row["status_code"] is not None:
            return Answer(int(row["status_code"]), row["response"], replayed=True)
        if time.monotonic() > deadline:
            raise Conflict(
                f"a request with {HEADER} {use.key!r} is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(0.05)


async def _forget(services: Services, use: Use) -> None:
    async with services.db.write() as conn:
        await key_rows.delete(conn, use.scope, use.endpoint, use.key)
