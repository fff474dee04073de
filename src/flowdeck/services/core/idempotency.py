"""Idempotency keys: a retried POST returns its first answer instead of creating again.

A key is scoped to the caller and the endpoint. The first use inserts the key
row with a hash of the body, in its own transaction, before anything is
created: the primary key decides between concurrent first uses, and the loser
waits for the winner's answer. The answer (status and body) is stored once
known and replayed to every later use with the same body; a different body is
a 409. A use that fails with an error is forgotten, so it can be retried.
Keys older than ``idempotency_ttl_seconds`` may be reused; a key left without
an answer for ``IN_FLIGHT_SECONDS`` (its process died) may be taken over.

A run created under a key is linked to it in the run's own commit
(``services.runs.IDEMPOTENCY_KEY``): a key whose run is stored but whose answer
is not (the process died between the two) answers with that run
(``Answer.created_run``), never with a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flowdeck.db import idempotency as key_rows
from flowdeck.db.idempotency import KeyRef
from flowdeck.errors import Conflict, InvalidInput
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs.service import IDEMPOTENCY_KEY, NewRun

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
IN_FLIGHT_SECONDS = 60.0
WAIT_SECONDS = 10.0
# Tests only (tests/e2e/test_idempotency_crash.py): the process kills itself in the window a crash
# used to turn into a second run.
CRASH_HOOK = "FLOWDECK_TEST_CRASH_BEFORE_IDEMPOTENT_ANSWER"


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered; ``replayed`` when it is the stored first answer."""

    status_code: int
    body: Any
    replayed: bool = False
    created_run: str | None = None  # the run the key created, its answer not stored


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


async def once(services: AppContext, use: Use, create: Callable[[], Awaitable[Answer]]) -> Answer:
    """Call ``create`` unless ``use``'s key already has an answer."""
    stored = await _begin(services, use)
    if stored is not None:
        return stored
    claim = IDEMPOTENCY_KEY.set(KeyRef(use.scope, use.endpoint, use.key))
    try:
        answer = await create()
    except BaseException:
        await _forget(services, use)
        raise
    finally:
        IDEMPOTENCY_KEY.reset(claim)
    if os.environ.get(CRASH_HOOK) == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # fault injection: die between the run's commit and the answer's
    async with services.db.write() as conn:
        await key_rows.store_answer(conn, use.scope, use.endpoint, use.key, answer.status_code, answer.body)
    return answer


async def _begin(services: AppContext, use: Use) -> Answer | None:
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
            created = None
            if row is not None and row["status_code"] is None:
                created = await key_rows.created_run(conn, use.scope, use.endpoint, use.key)
            if created is None and row is not None and row["status_code"] is None and _abandoned(row, now):
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
        if created is not None:
            return Answer(0, None, replayed=True, created_run=created)
        if time.monotonic() > deadline:
            raise Conflict(
                f"a request with {HEADER} {use.key!r} is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(0.05)


def _abandoned(row: Any, now: datetime) -> bool:
    return bool(now - row["created_at"] > timedelta(seconds=IN_FLIGHT_SECONDS))


async def _forget(services: AppContext, use: Use) -> None:
    async with services.db.write() as conn:
        await key_rows.delete(conn, use.scope, use.endpoint, use.key)
