"""Sign-in and sign-out: a password (auth mode basic) or an API token, checked by the API's own
:class:`~flowdeck.services.auth.authenticate.Authenticator`, then a signed session cookie."""

from __future__ import annotations

import base64
import urllib.parse

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import web
from flowdeck.errors import InvalidInput, Unauthenticated
from flowdeck.services.auth import sessions

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)


def _next_page(raw: str | None) -> str:
    """Where to go after signing in: a UI path of this site, never another site."""
    if raw and raw.startswith(f"{web.PREFIX}/") and not raw.startswith("//") and "\\" not in raw:
        parts = urllib.parse.urlsplit(raw)
        if not parts.scheme and not parts.netloc:
            return raw
    return f"{web.PREFIX}/"


def _authorization(fields: dict[str, str]) -> str:
    """The ``Authorization`` header the form stands for: the API checks it as it would any other."""
    token = fields.get("token", "").strip()
    if token:
        return f"Bearer {token}"
    username, password = fields.get("username", "").strip(), fields.get("password", "")
    if not username or not password:
        raise InvalidInput("enter a username and password, or an API token")
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    if web.services_of(request).settings.auth_mode == "none":
        return RedirectResponse(_next_page(next), status_code=303)
    return web.render(request, "sign_in.html", next=_next_page(next), error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    fields = await web.form(request)
    target = _next_page(fields.get("next"))
    if web.services_of(request).settings.auth_mode == "none":
        return RedirectResponse(target, status_code=303)
    try:
        found = await request.app.state.authenticator.authenticate(_authorization(fields))
    except (Unauthenticated, InvalidInput) as exc:
        return web.render(request, "sign_in.html", status_code=401, next=target, error=exc.detail)
    token_id = (
        await sessions.token_id_of(web.services_of(request).db, fields["token"].strip())
        if found.via == "token"
        else None
    )
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        web.SESSION_COOKIE,
        sessions.issue(web.keys(request), found.name, found.via, token_id=token_id),
        max_age=sessions.LIFETIME_SECONDS,
        httponly=True,
        samesite="lax",
        secure=web.is_https(request),
        path=web.PREFIX,
    )
    return answer


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await web.form(request)
    answer = RedirectResponse(f"{web.PREFIX}/sign-in", status_code=303)
    answer.delete_cookie(
        web.SESSION_COOKIE, path=web.PREFIX, httponly=True, samesite="lax", secure=web.is_https(request)
    )
    return answer
