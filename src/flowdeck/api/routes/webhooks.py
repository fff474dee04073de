"""Webhook endpoints and e-mail notification preferences (docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.api.deps import PrincipalDep, ServicesDep
from flowdeck.api.http_body import body_schema, json_model
from flowdeck.services.events import notifications
from flowdeck.services.events import webhooks as webhook_service
from flowdeck.services.events.notifications import Preferences
from flowdeck.services.events.outbox import EVENT_TYPES
from flowdeck.services.events.webhooks import NewWebhook

router = APIRouter(tags=["webhooks"])
_ID = Field(None, min_length=1, max_length=128)


class WebhookFilters(BaseModel):
    """Only events of this pipeline, run or request (all must match)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pipeline: str | None = _ID
    run: str | None = _ID
    request: str | None = _ID


class WebhookBody(BaseModel):
    """``POST /webhooks``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] | None = Field(None, description=f"Any of {', '.join(EVENT_TYPES)} (default: all).")
    research_group: str | None = Field(None, description="Default: your group; a service admin may omit it.")
    filters: WebhookFilters = Field(default_factory=WebhookFilters)
    description: str | None = Field(None, max_length=1000)


class PreferencesBody(BaseModel):
    """``PUT /notifications/preferences``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: str = Field(min_length=3, max_length=320)
    on_completion: bool = False
    on_failure: bool = True
    request_summary: bool = Field(False, description="One mail per request once all its runs ended, not one per run.")


@router.post("/webhooks", status_code=201, openapi_extra=body_schema(WebhookBody))
async def create_webhook(
    services: ServicesDep, principal: PrincipalDep, body: Annotated[WebhookBody, Depends(json_model(WebhookBody))]
) -> dict[str, Any]:
    """Register an endpoint; the answer's ``secret`` (``whsec_…``) is shown this once."""
    new = NewWebhook(
        url=body.url,
        event_types=body.event_types,
        research_group=body.research_group,
        pipeline_name=body.filters.pipeline,
        run_id=body.filters.run,
        request_id=body.filters.request,
        description=body.description,
    )
    return await webhook_service.register(services, principal, new)


@router.get("/webhooks")
async def list_webhooks(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    """The endpoints of your groups (every one for a service admin)."""
    return {"webhooks": await webhook_service.listed(services, principal)}


@router.get("/webhooks/{webhook_id}")
async def get_webhook(services: ServicesDep, principal: PrincipalDep, webhook_id: str) -> dict[str, Any]:
    return webhook_service.view(await webhook_service.get_visible(services, principal, webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(services: ServicesDep, principal: PrincipalDep, webhook_id: str) -> Response:
    await webhook_service.delete(services, principal, webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    services: ServicesDep,
    principal: PrincipalDep,
    webhook_id: str,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=0, description="Deliveries older than this delivery id.")] = None,
) -> dict[str, Any]:
    """The endpoint's deliveries, newest first, with each one's attempts and last answer."""
    rows = await webhook_service.deliveries(services, principal, webhook_id, page_size, before)
    return {"deliveries": rows, "next_before": rows[-1]["id"] if len(rows) == page_size else None}


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(
    services: ServicesDep, principal: PrincipalDep, webhook_id: str, delivery_id: int
) -> dict[str, Any]:
    """Send a delivery again at once (same ``webhook-id``: receivers deduplicate on it)."""
    return await webhook_service.redeliver(services, principal, webhook_id, delivery_id)


@router.get("/notifications/preferences")
async def get_preferences(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    """Your e-mail notification preferences."""
    return await notifications.get(services, principal)


@router.put("/notifications/preferences", openapi_extra=body_schema(PreferencesBody))
async def put_preferences(
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[PreferencesBody, Depends(json_model(PreferencesBody))],
) -> dict[str, Any]:
    """Set your e-mail notification preferences (the whole record)."""
    return await notifications.put(services, principal, Preferences(**body.model_dump()))


@router.delete("/notifications/preferences", status_code=204)
async def delete_preferences(services: ServicesDep, principal: PrincipalDep) -> Response:
    """Stop every notification e-mail to you."""
    await notifications.delete(services, principal)
    return Response(status_code=204)
