"""Webhook endpoints: register, list, read, delete, their deliveries, redelivery (docs/webhooks.md).

An endpoint belongs to a research group (the rule for every new object:
:func:`~flowdeck.services.auth.guard.group_for_new_object`) and receives that group's events; one
a service admin registers without a group receives every group's. Its URL passes the SSRF policy
now and again at each delivery. The secret is shown once, in the answer to the registration.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.db import deliveries as delivery_rows
from flowdeck.db import webhooks as webhook_rows
from flowdeck.domain.principal import Principal
from flowdeck.domain.webhook_signature import new_secret
from flowdeck.errors import InvalidInput
from flowdeck.services.auth.guard import ensure_visible, group_for_new_object, not_found
from flowdeck.services.core import url_policy
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.events.outbox import EVENT_TYPES


@dataclass(frozen=True)
class NewWebhook:
    """A ``POST /webhooks`` body."""

    url: str
    event_types: list[str] | None = None
    research_group: str | None = None
    pipeline_name: str | None = None
    run_id: str | None = None
    request_id: str | None = None
    description: str | None = None


_FILTERS = (("pipeline", "pipeline_name"), ("run", "run_id"), ("request", "request_id"))


def view(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An endpoint as the API shows it (never its secret)."""
    return {
        "id": row["id"],
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "research_group": row["research_group"],
        "filters": {k: row[c] for k, c in _FILTERS if row[c] is not None},
        "description": row["description"],
        "owner": row["owner"],
        "created_at": row["created_at"].isoformat(),
    }


async def register(services: AppContext, principal: Principal, given: NewWebhook) -> dict[str, Any]:
    """Store the endpoint; the answer carries its secret, the only time it is shown."""
    types = given.event_types or list(EVENT_TYPES)
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"unknown event type(s) {', '.join(unknown)}; use {', '.join(EVENT_TYPES)}")
    group = group_for_new_object(principal, given.research_group)
    await asyncio.to_thread(url_policy.check_url, services.settings, given.url, what="webhook url")
    values = {
        "id": str(uuid.uuid4()),
        "url": given.url,
        "secret": new_secret(),
        "event_types": sorted(set(types)),
        "research_group": group,
        "pipeline_name": given.pipeline_name,
        "run_id": given.run_id,
        "request_id": given.request_id,
        "description": given.description,
        "owner": principal.name,
        "created_at": utcnow(),
    }
    async with services.db.write() as conn:
        await webhook_rows.insert(conn, values)
    return view(values) | {"secret": values["secret"]}


async def get_visible(services: AppContext, principal: Principal, webhook_id: str) -> Mapping[Any, Any]:
    """The endpoint, or NotFound when it does not exist or the caller may not see its group."""
    async with services.db.read() as conn:
        row = await webhook_rows.get(conn, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    ensure_visible(principal, row["research_group"], "webhook", webhook_id)
    return row


async def listed(services: AppContext, principal: Principal) -> list[dict[str, Any]]:
    """The endpoints of the caller's groups (every one for a service admin)."""
    async with services.db.read() as conn:
        rows = await webhook_rows.listed(conn, principal.visible_groups())
    return [view(row) for row in rows]


async def delete(services: AppContext, principal: Principal, webhook_id: str) -> None:
    """Remove the endpoint and its deliveries (sent or not)."""
    await get_visible(services, principal, webhook_id)
    async with services.db.write() as conn:
        await webhook_rows.delete(conn, webhook_id)


def delivery_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One delivery as ``GET /webhooks/{id}/deliveries`` shows it."""
    return {
        "id": row["id"],
        "message_id": row["message_id"],
        "event_type": row["event_type"],
        "event_id": row["payload"]["data"]["id"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"].isoformat() if row["state"] == "pending" else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": row["created_at"].isoformat(),
        "delivered_at": row["delivered_at"].isoformat() if row["delivered_at"] else None,
    }


async def deliveries(
    services: AppContext, principal: Principal, webhook_id: str, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """The endpoint's deliveries, newest first (``before``: a delivery id, for the next page)."""
    await get_visible(services, principal, webhook_id)
    async with services.db.read() as conn:
        rows = await delivery_rows.for_webhook(conn, webhook_id, limit, before)
    return [delivery_view(row) for row in rows]


async def redeliver(services: AppContext, principal: Principal, webhook_id: str, delivery_id: int) -> dict[str, Any]:
    """Queue a delivery again at once, with its original message id."""
    await get_visible(services, principal, webhook_id)
    async with services.db.write() as conn:
        row = await delivery_rows.get(conn, delivery_id)
        if row is None or row["webhook_id"] != webhook_id:
            raise not_found("delivery", str(delivery_id))
        await delivery_rows.redeliver(conn, delivery_id, utcnow())
        row = await delivery_rows.get(conn, delivery_id)
    assert row is not None
    return delivery_view(row)
