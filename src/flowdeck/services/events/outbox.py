"""The outbox: deliveries written in the transaction that writes their event (ADR 0015).

:mod:`flowdeck.services.runs.state_machine` calls :func:`run_event` or :func:`request_event` right
after it writes an event, on the same connection, so a delivery row exists for each committed
event and for none that rolled back. With no webhook endpoint this costs one read of the (empty)
``webhooks`` table; e-mail adds one read when a run or request ends. The worker sends the rows
(:mod:`flowdeck.services.events.deliveries`, run by the worker).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import deliveries as delivery_rows
from flowdeck.db import requests as request_rows
from flowdeck.db import webhooks as webhook_rows
from flowdeck.domain.states import TERMINAL, State

EVENT_TYPES = ("run.state", "request.state", "request.cancel")
_TERMINAL = sorted(s.value for s in TERMINAL)
_FAILED = frozenset({State.EXECUTOR_ERROR.value, State.SYSTEM_ERROR.value, State.PREEMPTED.value})

Event = dict[str, Any]


def event_data(
    event_id: int | None, kind: str, at: datetime, subject: Mapping[Any, Any], fields: Mapping[Any, Any]
) -> Event:
    """The event as ``GET /events`` shows it (``id`` None: filled in when it is sent)."""
    return {
        "id": event_id,
        "type": kind,
        "at": at.isoformat(),
        "run_id": fields.get("run_id"),
        "request_id": subject.get("request_id"),
        "from_state": fields.get("from_state"),
        "to_state": fields.get("to_state"),
        "reason": fields.get("reason"),
        "actor": fields.get("actor"),
        "pipeline_name": subject.get("pipeline_name"),
        "research_group": subject.get("research_group"),
    }


async def run_event(conn: AsyncConnection, event_id: int, at: datetime, fields: Mapping[Any, Any]) -> None:
    """Queue what a run's event sends: webhooks, and e-mail when the run ended."""
    endpoints = await webhook_rows.matching_candidates(conn)
    ended = fields.get("to_state") in _TERMINAL
    if not endpoints and not ended:
        return
    subject = await webhook_rows.run_subject(conn, fields["run_id"])
    if subject is None:
        return
    event = event_data(event_id, "state", at, subject, fields)
    rows = webhook_deliveries(endpoints, "run.state", event, fields["run_id"], at)
    if ended and subject["email"] is not None:
        rows += await _run_emails(conn, subject, event, at)
    await delivery_rows.insert_many(conn, rows)


async def request_event(
    conn: AsyncConnection, event_id: int, kind: str, at: datetime, fields: Mapping[Any, Any]
) -> None:
    """Queue what a request's event sends: webhooks, and e-mail when the request as a whole ended."""
    endpoints = await webhook_rows.matching_candidates(conn)
    to_state = fields.get("to_state")
    if not endpoints and to_state not in ("failed", "submitted"):
        return
    request_id = fields["request_id"]
    subject = await webhook_rows.request_subject(conn, request_id)
    if subject is None:
        return
    event = event_data(event_id, kind, at, {**subject, "request_id": request_id}, fields)
    rows = webhook_deliveries(endpoints, f"request.{kind}", event, f"request:{request_id}", at)
    if to_state in ("failed", "submitted") and subject["email"] is not None:
        rows += await _request_summary(conn, request_id, subject, at)
    await delivery_rows.insert_many(conn, rows)


async def new_run_deliveries(
    conn: AsyncConnection, created: Sequence[tuple[Mapping[Any, Any], datetime, Mapping[Any, Any]]]
) -> list[dict[str, Any]]:
    """Deliveries of the first events of runs written in one batch: (run row, time, event fields)
    each. Their event ids are not known yet; the worker looks each up when it sends it."""
    endpoints = await webhook_rows.matching_candidates(conn)
    if not endpoints:
        return []
    rows: list[dict[str, Any]] = []
    for run, at, fields in created:
        event = event_data(None, "state", at, run, fields)
        rows += webhook_deliveries(endpoints, "run.state", event, str(run["id"]), at)
    return rows


def webhook_deliveries(
    endpoints: Sequence[Mapping[Any, Any]], event_type: str, event: Event, order: str, now: datetime
) -> list[dict[str, Any]]:
    """One delivery row per endpoint that wants this event; rows of one endpoint and ``order``
    (a run, a request) are sent in the order they were written."""
    wanted = [e for e in endpoints if matches(e, event_type, event)]
    if not wanted:
        return []
    message_id = new_message_id()
    payload = {"type": event_type, "timestamp": event["at"], "data": event}
    return [
        _row(message_id, "webhook", f"{e['id']}:{order}", event_type, payload, now, webhook_id=e["id"]) for e in wanted
    ]


def matches(endpoint: Mapping[Any, Any], event_type: str, event: Event) -> bool:
    """Whether an endpoint's types and filters take this event. A group's endpoint takes only
    its group's events; a service-wide one (no group) takes every group's."""
    return (
        event_type in endpoint["event_types"]
        and endpoint["research_group"] in (None, event["research_group"])
        and endpoint["pipeline_name"] in (None, event["pipeline_name"])
        and endpoint["run_id"] in (None, event["run_id"])
        and endpoint["request_id"] in (None, event["request_id"])
    )


def new_message_id() -> str:
    """A delivery's ``webhook-id``: the same on every retry and redelivery."""
    return "msg_" + uuid.uuid4().hex


def _row(
    message_id: str,
    channel: str,
    queue: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    webhook_id: str | None = None,
    recipient: str | None = None,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "channel": channel,
        "webhook_id": webhook_id,
        "recipient": recipient,
        "queue": queue,
        "event_type": event_type,
        "payload": payload,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --- e-mail (docs/webhooks.md#e-mail)


async def _run_emails(
    conn: AsyncConnection, subject: Mapping[Any, Any], event: Event, now: datetime
) -> list[dict[str, Any]]:
    request_id = subject["request_id"]
    if request_id is not None and (subject["request_summary"] or await webhook_rows.email_requested(conn, request_id)):
        if await webhook_rows.open_runs(conn, request_id, _TERMINAL) or await _still_expanding(conn, request_id):
            return []
        return await _request_summary(conn, request_id, subject, now, checked=True)
    state = event["to_state"]
    wanted = (state == State.COMPLETE.value and subject["on_completion"]) or (
        state in _FAILED and subject["on_failure"]
    )
    if not wanted:
        return []
    text = f"Run {event['run_id']} ended in {state}.\n\nPipeline: {event['pipeline_name'] or '-'}\n"
    if event["reason"]:
        text += f"Reason: {event['reason']}\n"
    mail = {"subject": f"flowdeck: run {event['run_id']} {state}", "text": text}
    return [
        _row(new_message_id(), "email", f"email:{uuid.uuid4().hex}", "run.state", mail, now, recipient=subject["email"])
    ]


async def _still_expanding(conn: AsyncConnection, request_id: str) -> bool:
    row = await request_rows.get(conn, request_id)
    return row is None or row.state == "new"


async def _request_summary(
    conn: AsyncConnection, request_id: str, subject: Mapping[Any, Any], now: datetime, *, checked: bool = False
) -> list[dict[str, Any]]:
    """The one e-mail for a request as a whole, once it failed or its last run ended."""
    if not (subject["request_summary"] or await webhook_rows.email_requested(conn, request_id)):
        return []
    if (
        not checked
        and subject.get("state") == "submitted"
        and await webhook_rows.open_runs(conn, request_id, _TERMINAL)
    ):
        return []  # expanded, runs still going: the last run's end sends it
    counts = await request_rows.run_states(conn, request_id)
    if subject.get("state") == "submitted" and not counts:
        return []
    outcome = "failed" if subject.get("state") == "failed" or set(counts) - {State.COMPLETE.value} else "completed"
    lines = "".join(f"  {state}: {n}\n" for state, n in sorted(counts.items())) or "  none\n"
    text = f"Request {request_id} ({subject['pipeline_name'] or '-'}) has {outcome}.\n\nRuns:\n{lines}"
    mail = {"subject": f"flowdeck: request {request_id} {outcome}", "text": text}
    queue = f"email:{uuid.uuid4().hex}"
    return [_row(new_message_id(), "email", queue, "request.summary", mail, now, recipient=subject["email"])]
