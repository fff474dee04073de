"""The API pages (/docs: Swagger UI, /redoc: ReDoc) with their scripts and styles served by
flowdeck from the package (``static/VENDORED.md``), so they work on a cluster with no internet."""

from __future__ import annotations

from html import escape

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from flowdeck.api.ui.web import PREFIX

SWAGGER_JS = "swagger-ui-bundle-5.35.0.js"
SWAGGER_CSS = "swagger-ui-5.35.0.css"
REDOC_JS = "redoc.standalone-3.0.1.js"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_STATIC = f"{PREFIX}/static"


def swagger_page(openapi_url: str, title: str) -> HTMLResponse:
    """Swagger UI; ``validatorUrl`` off, since it would send the schema to validator.swagger.io."""
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{_STATIC}/{SWAGGER_JS}",
        swagger_css_url=f"{_STATIC}/{SWAGGER_CSS}",
        swagger_favicon_url=f"{_STATIC}/favicon.svg",
        oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_ui_parameters={"validatorUrl": None},
    )


# ReDoc 3 shows a "powered by" logo from cdn.redoc.ly and has no option to hide it: this policy
# keeps the browser from asking (the image's own error handler then leaves it out).
REDOC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'"
)


def redoc_page(openapi_url: str, title: str) -> HTMLResponse:
    """ReDoc 3 (FastAPI's own page is written for ReDoc 2, which fails on this schema's ``$defs``),
    loaded as the module it is, without web fonts, under :data:`REDOC_CSP`."""
    return HTMLResponse(
        headers={"Content-Security-Policy": REDOC_CSP},
        content='<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n"
        f'<link rel="icon" href="{_STATIC}/favicon.svg">\n</head>\n<body>\n'
        f'<redoc spec-url="{escape(openapi_url)}"></redoc>\n'
        f'<script type="module" src="{_STATIC}/{REDOC_JS}"></script>\n</body>\n</html>\n',
    )
