"""Sending the outbox: webhooks and e-mail, with retries and exponential backoff (docs/webhooks.md).

The worker runs it beside its loop (worker/deliveries.py). Each round reads the oldest pending delivery of each queue (an endpoint and a
run, so a run's events reach an endpoint in order), holds the due ones with a lease, sends them
in parallel off the event loop, and records each outcome. A failed attempt is retried after
``webhook_retry_seconds``, doubling up to ``webhook_retry_max_seconds``; after
``webhook_max_attempts`` the delivery is ``failed`` and the queue moves on. Nothing here runs
inside a state change: a slow or dead receiver delays only its own queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx

from flowdeck.db import deliveries as delivery_rows
from flowdeck.db import webhooks as webhook_rows
from flowdeck.domain.webhook_signature import headers
from flowdeck.services.core import url_policy
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One attempt: the receiver's status (None: no answer) and what went wrong."""

    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.status is None or 200 <= self.status < 300)


async def deliver_once(services: AppContext, pool: BlockingPool, http: httpx.Client | None = None) -> int:
    """Send the deliveries that are due now; how many were attempted (``http``: a client to reuse)."""
    now = utcnow()
    async with services.db.read() as conn:
        heads = await delivery_rows.heads_due(conn, now, services.settings.delivery_batch)
    if not heads:
        return 0
    claimed = await _claim(services, heads, now)
    async with services.db.read() as conn:  # one read for the whole round
        endpoints = await webhook_rows.by_ids(conn, {row["webhook_id"] for row in claimed if row["webhook_id"]})
        payloads = [await _with_event_id(conn, row["payload"]) for row in claimed]
    outcomes = await asyncio.gather(
        *(
            _attempt(services, pool, row, payload, endpoints.get(row["webhook_id"]), http)
            for row, payload in zip(claimed, payloads, strict=True)
        )
    )
    async with services.db.write() as conn:
        for row, outcome in zip(claimed, outcomes, strict=True):
            await delivery_rows.record(conn, row["id"], after_attempt(services.settings, row, outcome, utcnow()))
    return len(claimed)


PRUNE_BATCH = 1000


async def prune(services: AppContext, now: datetime | None = None) -> int:
    """Delete delivered and failed deliveries older than ``delivery_retention_days`` (none when it
    is 0), a batch per transaction so a large backlog never holds a long lock; how many went."""
    days = services.settings.delivery_retention_days
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    gone = 0
    while True:
        async with services.db.write() as conn:
            batch = await delivery_rows.prune(conn, cutoff, PRUNE_BATCH)
        gone += batch
        if batch < PRUNE_BATCH:
            return gone


async def _claim(services: AppContext, heads: list[Any], now: datetime) -> list[Mapping[Any, Any]]:
    until = now + timedelta(seconds=services.settings.webhook_timeout_seconds * 2 + 30)
    claimed = []
    async with services.db.write() as conn:
        for row in heads:
            if await delivery_rows.claim(conn, row["id"], now, until):
                claimed.append(row)
    return claimed


def after_attempt(settings: Settings, row: Mapping[Any, Any], outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The row's new values: delivered, retried later, or failed for good."""
    attempts = row["attempts"] + 1
    values: dict[str, Any] = {"attempts": attempts, "last_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        return values | {"state": "delivered", "delivered_at": now}
    if attempts >= settings.webhook_max_attempts:
        log.warning("delivery %s failed for good after %d attempts: %s", row["id"], attempts, outcome.error)
        return values | {"state": "failed"}
    wait = min(settings.webhook_retry_max_seconds, settings.webhook_retry_seconds * 2 ** (attempts - 1))
    return values | {"next_attempt_at": now + timedelta(seconds=wait)}


async def _attempt(
    services: AppContext,
    pool: BlockingPool,
    row: Mapping[Any, Any],
    payload: dict[str, Any],
    endpoint: Mapping[Any, Any] | None,
    http: httpx.Client | None,
) -> Outcome:
    try:
        if row["channel"] == "email":
            return await _email(services.settings, pool, row)
        if endpoint is None:
            return Outcome(error="the endpoint was deleted")
        return await _webhook(services.settings, pool, row["message_id"], payload, endpoint, http)
    except Exception as exc:  # a receiver's failure is a retry, never a broken iteration
        return Outcome(error=f"{type(exc).__name__}: {str(exc)[:300]}")


async def _webhook(
    settings: Settings,
    pool: BlockingPool,
    message_id: str,
    payload: dict[str, Any],
    endpoint: Mapping[Any, Any],
    http: httpx.Client | None,
) -> Outcome:
    body = json.dumps(payload, separators=(",", ":")).encode()
    sent = headers(endpoint["secret"], message_id, int(time.time()), body)
    status = await pool.run(
        url_policy.post,
        settings,
        endpoint["url"],
        what="webhook url",
        body=body,
        headers=sent,
        timeout=settings.webhook_timeout_seconds,
        client=http,
    )
    return Outcome(status, None if 200 <= status < 300 else f"the receiver answered {status}")


async def _with_event_id(conn: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """A new run's first event was written in a batch, before its id was known: look it up."""
    data = payload.get("data")  # an e-mail's payload has none
    if not isinstance(data, dict) or data.get("id") is not None or data.get("run_id") is None:
        return payload
    return payload | {"data": data | {"id": await delivery_rows.creation_event_id(conn, data["run_id"])}}


async def _email(settings: Settings, pool: BlockingPool, row: Mapping[Any, Any]) -> Outcome:
    if not settings.smtp_host:
        return Outcome(error="no SMTP server is configured (FLOWDECK_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = row["recipient"]
    message["Subject"] = row["payload"]["subject"]
    message["Message-ID"] = f"<{row['message_id']}@flowdeck>"
    message.set_content(row["payload"]["text"])
    await pool.run(send_mail, settings, message)
    return Outcome()


def send_mail(settings: Settings, message: EmailMessage) -> None:
    """Hand one message to the configured SMTP server. Blocking."""
    assert settings.smtp_host is not None
    timeout = settings.webhook_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_tls == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_user, password)
        smtp.send_message(message)
