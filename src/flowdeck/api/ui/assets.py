"""The UI's static files, from the package (no CDN): a fixed list, nothing else on disk is served."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from flowdeck.api.ui import docs, web
from flowdeck.errors import NotFound

HTMX = "htmx-2.0.11.min.js"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SERVED = (HTMX, "ui.css", "favicon.svg", "upload.js", docs.SWAGGER_JS, docs.SWAGGER_CSS, docs.REDOC_JS)
router = APIRouter(prefix=f"{web.PREFIX}/static", route_class=web.UIRoute, include_in_schema=False)


@router.get("/{name}")
async def asset(name: str) -> Response:
    """A vendored or own asset; the name carries its version, so browsers may keep it a day."""
    if name not in SERVED:
        raise NotFound("no such file")
    body = files("flowdeck.api.ui").joinpath("static", name).read_bytes()
    media_type = _TYPES[name[name.rindex(".") :]]
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
