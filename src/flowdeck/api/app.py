"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.telemetry import TelemetryConfig
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp

from flowdeck import __version__
from flowdeck.api import errors
from flowdeck.api.access_log import OuterLayer
from flowdeck.api.admission import ListTurns
from flowdeck.api.routes import accounts, datasets, jobs, ops, pipelines, references, wes
from flowdeck.api.routes import events as event_routes
from flowdeck.api.routes import groups as group_routes
from flowdeck.api.routes import requests as request_routes
from flowdeck.api.routes import results as result_routes
from flowdeck.api.routes import webhooks as webhook_routes
from flowdeck.api.ui import docs as ui_docs
from flowdeck.api.ui import include as include_ui
from flowdeck.api.wes_views import WES
from flowdeck.services.auth.authenticate import Authenticator, challenge_headers
from flowdeck.services.core.context import AppContext
from flowdeck.services.events.stream import EventHub
from flowdeck.services.pipelines.catalog import CatalogFiles
from flowdeck.settings import Settings

log = logging.getLogger(__name__)


class _App(FastAPI):
    """FastAPI with :class:`OuterLayer` outside Starlette's error middleware, where it sees every
    answer's status (a 500 included) and ends an exception its handler already logged."""

    access_log = False
    list_concurrency = 1

    def build_middleware_stack(self) -> ASGIApp:
        # Built on the first request, when every route is in place.
        turns = ListTurns(self.routes, self.list_concurrency)
        return OuterLayer(super().build_middleware_stack(), access_log=self.access_log, list_turns=turns)


def create_app(
    settings: Settings, services: AppContext | None = None, *, catalog_files: CatalogFiles | None = None
) -> FastAPI:
    """A flowdeck API. Pass ``services`` to share them (``flowdeck up`` does, with the worker), or
    ``catalog_files`` already checked to have the catalog parsed on first use (AppContext.create)."""
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ready = services or AppContext.create(settings, catalog_files=catalog_files)
        app.state.services = ready
        app.state.authenticator = Authenticator(settings, ready.db)
        app.state.challenge_headers = challenge_headers(settings)
        app.state.event_hub = EventHub(ready)
        try:
            yield
        finally:
            await app.state.event_hub.aclose()
            await app.state.authenticator.aclose()
            if owned:
                await ready.close()

    app = _App(
        title="flowdeck",
        version=__version__,
        description="Workflow runs for bioinformatics groups: GA4GH WES 1.1.0, a jobs API, pipelines, datasets.",
        lifespan=lifespan,
        # Added by _add_docs after the API routes instead (FastAPI adds them first otherwise).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=_telemetry(settings.opentelemetry),
    )
    app.access_log = settings.access_log
    app.list_concurrency = settings.list_concurrency
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    errors.install(app)
    wes.include(app)
    app.include_router(result_routes.wes_router)
    app.include_router(ops.router)
    app.include_router(request_routes.router)
    app.include_router(jobs.router)
    app.include_router(result_routes.jobs_router)
    app.include_router(datasets.router)
    app.include_router(pipelines.router)
    app.include_router(references.router)
    app.include_router(accounts.router)
    app.include_router(event_routes.router)
    app.include_router(group_routes.router)
    include_ui(app)
    app.include_router(webhook_routes.router)
    _add_docs(app)
    return app


def _telemetry(enabled: bool) -> TelemetryConfig:
    """FastAPI's native OpenTelemetry, on only when asked for: its middleware looks for a
    configured SDK on every request, which a status poll pays for in throughput."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled, "operation_spans": enabled}


def _add_docs(app: FastAPI) -> None:
    """/openapi.json, /docs, /docs/oauth2-redirect and /redoc, with their assets served by flowdeck.

    Routes are matched in order, and FastAPI adds these four when the app is made, before every
    API route: each request would try them first (~1 µs each). FastAPI's own ``setup`` adds
    /openapi.json here, after the API routes; the pages follow it, loading Swagger UI and ReDoc
    from the package instead of a CDN (docs/adr/0025).
    """
    openapi_url = "/openapi.json"

    async def swagger(request: Request) -> HTMLResponse:
        return ui_docs.swagger_page(openapi_url, f"{app.title} - Swagger UI")

    async def redoc(request: Request) -> HTMLResponse:
        return ui_docs.redoc_page(openapi_url, f"{app.title} - ReDoc")

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # Seed 003's names for the same pages, under the WES prefix.
    app.add_route(f"{WES}/docs", swagger, include_in_schema=False)
    app.add_route(f"{WES}/redoc", redoc, include_in_schema=False)
    app.openapi_url, app.docs_url, app.redoc_url = openapi_url, None, None
    app.setup()
    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route(ui_docs.OAUTH2_REDIRECT, oauth2_redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
    app.docs_url, app.redoc_url = "/docs", "/redoc"
