"""Sign-in and sign-out: a password (auth mode basic) or an API token, checked by the API's own
:class:`~flowdeck.services.auth.authenticate.Authenticator`, or the issuer's own sign-in page
(auth mode oidc, authorization code + PKCE), then a signed session cookie."""

from __future__ import annotations

import base64
import time
import urllib.parse
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import web
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, NotFound, Unauthenticated
from flowdeck.services.auth import sessions

if TYPE_CHECKING:
    # Imported on first use: they bring httpx and PyJWT's key handling, which an API that signs
    # nobody in through OIDC never needs (tests/integration/test_api_startup_memory.py).
    from flowdeck.services.auth.oidc_signin import OidcSignIn, Pending

OIDC_COOKIE = "fd_oidc"
OIDC_SECONDS = 600  # long enough to type a password at the issuer, short enough to go stale

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
    return _signed_in(request, target, found, token_id)


def _signed_in(request: Request, target: str, found: Principal, token_id: str | None = None) -> Response:
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


def _oidc(request: Request) -> OidcSignIn:
    """The app's OIDC sign-in, made on first use; NotFound unless mode oidc has a UI client id."""
    found: OidcSignIn | None = getattr(request.app.state, "ui_oidc", None)
    if found is None:
        from flowdeck.services.auth.oidc_signin import OidcSignIn

        verifier = request.app.state.authenticator.oidc
        if verifier is None or not verifier.settings.oidc_ui_client_id:
            raise NotFound("OIDC sign-in is not configured here (oidc_ui_client_id)")
        found = request.app.state.ui_oidc = OidcSignIn(verifier)
    return found


def _callback_url(request: Request) -> str:
    public = web.services_of(request).settings.public_url
    return f"{(public or str(request.base_url)).rstrip('/')}{web.PREFIX}/oidc/callback"


@router.get("/sign-in/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    """Off to the issuer's sign-in page; the state, nonce and PKCE verifier wait in a signed cookie."""
    url, pending = await _oidc(request).start(_callback_url(request), _next_page(next))
    claims: dict[str, str | int] = {
        "s": pending.state,
        "n": pending.nonce,
        "v": pending.verifier,
        "x": pending.next_page,
    }
    answer = RedirectResponse(url, status_code=303)
    answer.set_cookie(
        OIDC_COOKIE,
        sessions.seal(web.keys(request).oidc, claims | {"e": int(time.time()) + OIDC_SECONDS}),
        max_age=OIDC_SECONDS,
        httponly=True,
        samesite="lax",  # the issuer sends the browser back with a top-level GET: Lax cookies come along
        secure=web.is_https(request),
        path=f"{web.PREFIX}/oidc",
    )
    return answer


@router.get("/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    """The issuer's answer: a code to trade for verified tokens, then a session as any other."""
    from flowdeck.services.auth.jwks import IdentityProviderUnavailable

    flow = _oidc(request)
    pending = _pending(request)
    try:
        if pending is None:
            raise Unauthenticated("this sign-in was not started in this browser, or took too long: start again")
        found = await flow.finish(web.services_of(request).db, pending, _callback_url(request), request.query_params)
    except (Unauthenticated, InvalidInput, IdentityProviderUnavailable) as exc:
        answer: Response = web.render(
            request, "sign_in.html", status_code=exc.status_code, next=f"{web.PREFIX}/", error=exc.detail
        )
    else:
        answer = _signed_in(request, pending.next_page, found)
    answer.delete_cookie(
        OIDC_COOKIE, path=f"{web.PREFIX}/oidc", httponly=True, samesite="lax", secure=web.is_https(request)
    )
    return answer


def _pending(request: Request) -> Pending | None:
    from flowdeck.services.auth.oidc_signin import Pending

    claims = sessions.unseal(web.keys(request).oidc, request.cookies.get(OIDC_COOKIE))
    if claims is None or not isinstance(claims.get("e"), int) or claims["e"] < time.time():
        return None
    try:
        return Pending(str(claims["s"]), str(claims["n"]), str(claims["v"]), _next_page(str(claims["x"])))
    except KeyError:
        return None


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await web.form(request)
    answer = RedirectResponse(f"{web.PREFIX}/sign-in", status_code=303)
    answer.delete_cookie(
        web.SESSION_COOKIE, path=web.PREFIX, httponly=True, samesite="lax", secure=web.is_https(request)
    )
    return answer
