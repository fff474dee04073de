"""What every UI page shares: the signed-in caller, rendering, security headers, CSRF, errors as pages.

:class:`UIRoute` wraps each UI handler once: a caller who must sign in is redirected to the
sign-in page, a :class:`~flowdeck.errors.FlowdeckError` becomes an HTML page with its status (a run
of another group is the same 404 page as a missing one), and every answer gets the security
headers of docs/adr/0016.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from flowdeck.api.access_log import PRINCIPAL_KEY
from flowdeck.api.http_body import body_within, bounded
from flowdeck.domain.principal import LOCAL_USER, Principal
from flowdeck.errors import FlowdeckError, Forbidden, InvalidInput, Unauthenticated
from flowdeck.services.auth import sessions
from flowdeck.services.core.context import AppContext

PREFIX = "/ui"
SESSION_COOKIE = "fd_session"
CSRF_COOKIE = "fd_csrf"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024


def csp(connect_src: str = "'self'") -> str:
    """The UI's Content-Security-Policy; a page that sends data elsewhere widens only connect-src."""
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src {connect_src}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


CSP = csp()
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SignInNeeded(Exception):
    """The page needs a signed-in caller and this browser has no valid session."""


def templates() -> Environment:
    """The UI's Jinja2 environment (autoescaping on), made once per app by :func:`include`."""
    # auto_reload off: templates ship in the package, and checking them costs a stat per page.
    env = Environment(
        loader=PackageLoader("flowdeck.api.ui", "templates"), autoescape=select_autoescape(), auto_reload=False
    )
    env.globals["prefix"] = PREFIX
    return env


def services_of(request: Request) -> AppContext:
    services: AppContext = request.app.state.services
    return services


def keys(request: Request) -> sessions.Keys:
    """The session and CSRF keys, derived on first use (reading the storage secret touches disk)."""
    found: sessions.Keys | None = getattr(request.app.state, "ui_keys", None)
    if found is None:
        found = request.app.state.ui_keys = sessions.Keys.of(services_of(request).settings)
    return found


async def signed_in(request: Request) -> Principal | None:
    """The caller of this browser, or None. Auth mode ``none``: the local user, as in the API."""
    if services_of(request).settings.auth_mode == "none":
        request.state.ui_user = LOCAL_USER
        return LOCAL_USER
    session = sessions.read(keys(request), request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    try:
        principal = await sessions.principal_of(services_of(request).db, session)
    except Unauthenticated:
        return None
    request.scope[PRINCIPAL_KEY] = principal.name
    request.state.ui_user = principal
    return principal


async def require_user(request: Request) -> Principal:
    """The signed-in caller, or :class:`SignInNeeded` (the page redirects to the sign-in form)."""
    found = await signed_in(request)
    if found is None:
        raise SignInNeeded
    return found


def csrf_seed(request: Request) -> str:
    """This browser's CSRF seed: its cookie's, or a new one the answer will set."""
    seed = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_seed", None)
    if seed is None:
        seed = request.state.new_csrf_seed = sessions.new_csrf_seed()
    return seed


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page (or an htmx fragment) rendered for this browser, with the CSRF token its forms carry."""
    env: Environment = request.app.state.ui_templates
    context.setdefault("user", getattr(request.state, "ui_user", None))
    settings = services_of(request).settings
    context.setdefault("auth_mode", settings.auth_mode)
    context.setdefault("oidc_sign_in", settings.auth_mode == "oidc" and bool(settings.oidc_ui_client_id))
    html = env.get_template(template).render(csrf=sessions.csrf_token(keys(request), csrf_seed(request)), **context)
    return HTMLResponse(html, status_code=status_code)


async def form(request: Request) -> dict[str, str]:
    """A POSTed urlencoded form (one value per field), after the CSRF check; 403 if it fails."""
    if not _same_host(request):
        raise Forbidden("this form was sent from another site")
    raw = await body_within(request, MAX_FORM_BYTES)
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is not valid application/x-www-form-urlencoded UTF-8") from None
    fields = dict(pairs)
    if not sessions.csrf_ok(keys(request), request.cookies.get(CSRF_COOKIE), fields.get(CSRF_FIELD)):
        raise Forbidden("this form has expired or was not sent from this site: reload the page and try again")
    return fields


@asynccontextmanager
async def upload_form(request: Request, limit: int, max_fields: int = 20) -> AsyncIterator[FormData]:
    """A POSTed multipart form (one file, at most ``limit`` bytes) after the CSRF check; 403 if it
    fails. The browser sends the file before the token, so the parser takes it (spooled, within the
    limit) before the token can be checked; nothing is stored unless the check passes."""
    if not _same_host(request):
        raise Forbidden("this form was sent from another site")
    try:
        async with bounded(request, limit).form(max_files=1, max_fields=max_fields, max_part_size=limit) as posted:
            token = posted.get(CSRF_FIELD)
            if not sessions.csrf_ok(
                keys(request), request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None
            ):
                raise Forbidden("this form has expired or was not sent from this site: reload the page and try again")
            yield posted
    except MultiPartException as exc:
        raise InvalidInput(f"the upload is not a valid multipart form: {exc.message}") from None


def _same_host(request: Request) -> bool:
    """True unless the browser says the form came from another host. Ports are not compared: a
    proxy's ``Host`` (nginx ``$host``) drops the port the browser's ``Origin`` keeps."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    try:
        host = urllib.parse.urlsplit(f"//{request.headers.get('host', '')}").hostname
        return urllib.parse.urlsplit(origin).hostname == host
    except ValueError:
        return False


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _finish(request: Request, response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    seed = getattr(request.state, "new_csrf_seed", None)
    if seed is not None and CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, seed, httponly=True, samesite="strict", secure=is_https(request), path=PREFIX)
    return response


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):  # an htmx poll: have the browser go to the form
        return Response(status_code=204, headers={"HX-Redirect": f"{PREFIX}/sign-in"})
    return RedirectResponse(f"{PREFIX}/sign-in?{urllib.parse.urlencode({'next': target})}", status_code=303)


def _error_page(request: Request, exc: FlowdeckError) -> Response:
    return render(request, "error.html", status_code=exc.status_code, title=exc.title, detail=exc.detail)


class UIRoute(APIRoute):
    """A UI route: sign-in redirects, errors as pages, security headers (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                response = _sign_in_redirect(request)
            except FlowdeckError as exc:
                response = _error_page(request, exc)
            return _finish(request, response)

        return ui_handler
