"""The one place run state changes.

Every change is a compare-and-set on (id, state): it succeeds only if the run is
still in the state the caller saw, so two writers can never overwrite each
other, and a terminal state can never change. Each change writes an event in
the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import events
from flowdeck.db import webhooks as webhook_rows
from flowdeck.db.engine import Database
from flowdeck.db.tables import deliveries, requests, runs
from flowdeck.db.tables import events as events_table
from flowdeck.domain.states import State, can_transition, is_terminal
from flowdeck.services.events import outbox

log = logging.getLogger(__name__)


class IllegalTransition(ValueError):
    """A caller asked for a change the table forbids: a bug, not bad input."""


async def transition(
    conn: AsyncConnection,
    run_id: str,
    expected: State,
    target: State,
    *,
    now: datetime,
    reason: str | None = None,
    actor: str | None = None,
    fields: dict[str, Any] | None = None,
) -> bool:
    """Move ``run_id`` from ``expected`` to ``target``; False if it was no longer ``expected``."""
    if not can_transition(expected, target):
        raise IllegalTransition(f"{expected} -> {target} is not allowed")
    values: dict[str, Any] = dict(fields or {})
    values.update(state=target.value, state_version=runs.c.state_version + 1, updated_at=now, last_progress_at=now)
    if target is State.RUNNING:
        values["start_time"] = sa.func.coalesce(runs.c.start_time, now)
    if is_terminal(target):
        values["end_time"] = now
        values.update(lease_owner=None, lease_expires_at=None, next_check_at=None)
    result = await conn.execute(
        sa.update(runs).where(runs.c.id == run_id, runs.c.state == expected.value).values(**values)
    )
    if result.rowcount != 1:
        return False
    fields = {
        "run_id": run_id,
        "from_state": expected.value,
        "to_state": target.value,
        "reason": reason,
        "actor": actor,
    }
    event_id = await events.add(conn, at=now, kind="state", **fields)
    await outbox.run_event(conn, event_id, now, fields)
    log.info("run %s: %s -> %s%s", run_id, expected, target, f" ({reason})" if reason else "")
    return True


@dataclass(frozen=True)
class Creation:
    """A run accepted in QUEUED (or COMPLETE at once: a call-cache hit): when, by whom, and through what."""

    run_id: str
    at: datetime
    actor: str | None
    reason: str
    state: State = State.QUEUED


def creation_events(created: Sequence[Creation]) -> tuple[sa.Table, list[dict[str, Any]]]:
    """The first event of each of these runs, as rows to insert with the runs themselves."""
    return events_table, [
        {
            "run_id": c.run_id,
            "request_id": None,
            "at": c.at,
            "kind": "state",
            "from_state": None,
            "to_state": c.state.value,
            "reason": c.reason,
            "actor": c.actor,
        }
        for c in created
    ]


async def creation_deliveries(
    db: Database, created: Sequence[tuple[dict[str, Any], Creation]]
) -> tuple[sa.Table, list[dict[str, Any]]]:
    """The outbox rows of these runs' first events, to insert with them. Without any webhook
    endpoint (the usual case) this is one point read."""
    if ((await db.read_point(webhook_rows.ANY, {})) or {}).get("id") is None:
        return deliveries, []
    fields = [
        (run, c.at, {"run_id": c.run_id, "to_state": c.state.value, "reason": c.reason, "actor": c.actor})
        for run, c in created
    ]
    async with db.read() as conn:
        return deliveries, await outbox.new_run_deliveries(conn, fields)


# --- requests (seed 001): new → submitted | failed, nothing after

REQUEST_STATES = ("new", "submitted", "failed")
REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"submitted", "failed"}),
    "submitted": frozenset(),
    "failed": frozenset(),
}


async def transition_request(
    conn: AsyncConnection,
    request_id: str,
    expected: str,
    target: str,
    *,
    now: datetime,
    reason: str | None = None,
    actor: str | None = None,
    message: str | None = None,
) -> bool:
    """Move a request from ``expected`` to ``target`` (compare-and-set, with an event)."""
    if target not in REQUEST_TRANSITIONS.get(expected, frozenset()):
        raise IllegalTransition(f"request {expected} -> {target} is not allowed")
    result = await conn.execute(
        sa.update(requests)
        .where(requests.c.id == request_id, requests.c.state == expected)
        .values(state=target, message=message, updated_at=now, lease_owner=None, lease_expires_at=None)
    )
    if result.rowcount != 1:
        return False
    fields = {"request_id": request_id, "from_state": expected, "to_state": target, "reason": reason, "actor": actor}
    event_id = await events.add(conn, at=now, kind="state", **fields)
    await outbox.request_event(conn, event_id, "state", now, fields)
    log.info("request %s: %s -> %s%s", request_id, expected, target, f" ({reason})" if reason else "")
    return True


async def record_request_creation(
    conn: AsyncConnection, request_id: str, *, now: datetime, actor: str | None, reason: str
) -> None:
    """The first event of a request: it was accepted in ``new``."""
    await record_request_event(conn, request_id, "state", now=now, actor=actor, reason=reason, to_state="new")


async def record_request_event(
    conn: AsyncConnection,
    request_id: str,
    kind: str,
    *,
    now: datetime,
    actor: str | None,
    reason: str,
    to_state: str | None = None,
) -> None:
    """A request's event that changes no state column here (its creation, a cancel), with its deliveries."""
    fields = {"request_id": request_id, "to_state": to_state, "reason": reason, "actor": actor}
    event_id = await events.add(conn, at=now, kind=kind, **fields)
    await outbox.request_event(conn, event_id, kind, now, fields)
