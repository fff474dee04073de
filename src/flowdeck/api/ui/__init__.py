"""The web UI under ``/ui/``: server-rendered pages and vendored htmx (docs/adr/0016)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import admin, assets, datasets, launch, overview, request_page, runs, sheet_launch, signin, web


def include(app: FastAPI) -> None:
    """Add the UI's routes, its templates and the redirect of ``/`` to ``/ui/``."""
    app.state.ui_templates = web.templates()
    app.include_router(signin.router)
    app.include_router(assets.router)
    app.include_router(launch.router)
    app.include_router(sheet_launch.router)
    app.include_router(request_page.router)
    app.include_router(datasets.router)
    app.include_router(admin.router)
    app.include_router(overview.router)
    app.include_router(runs.router)

    async def home() -> RedirectResponse:
        return RedirectResponse(f"{web.PREFIX}/", status_code=307)

    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    app.add_api_route(web.PREFIX, home, methods=["GET"], include_in_schema=False)
