"""The accounts page (``/ui/admin``): your API tokens; your research groups and their members; for
service admins, every user and group.

Every action calls the accounts services with the guard the API's ``/users``, ``/groups`` and
``/tokens`` routes use, so the page allows exactly what the API allows: service admins manage users
and groups, a group's admins its memberships, everyone their own tokens. A new token's secret is in
the answer that creates it and nowhere else (``Cache-Control: no-store``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from flowdeck.api.ui import views, web
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, NotFound
from flowdeck.services.auth import directory, guard, users
from flowdeck.services.auth.passwords import Passwords

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)
PAGE = f"{web.PREFIX}/admin"
MAX_TOKEN_DAYS = 3650


@router.get("/admin")
async def admin_page(request: Request) -> Response:
    user = await web.require_user(request)
    return await _render(request, user)


async def _render(request: Request, user: Principal, new_token: dict[str, str] | None = None) -> Response:
    services = web.services_of(request)
    try:
        tokens = [_token(t) for t in await users.list_tokens(services.db, user)]
        has_account = True
    except NotFound:  # the unrestricted local user (auth off) has no account to hold tokens
        tokens, has_account = [], False
    groups = await directory.groups_with_members(services.db, guard.visible_groups(user))
    people = await directory.users_with_groups(services.db) if user.sees_all else []
    response = web.render(
        request,
        "admin.html",
        tokens=tokens,
        has_account=has_account,
        new_token=new_token,
        groups=[_group(user, g, members) for g, members in groups],
        people=[_person(u, memberships) for u, memberships in people],
        sees_all=user.sees_all,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/tokens")
async def create_token(request: Request) -> Response:
    """A new API token for the signed-in user; the page shows its secret this once."""
    user = await web.require_user(request)
    fields = await web.form(request)
    name = fields.get("name", "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("give the token a name of 1 to 200 characters")
    expires = _expiry(fields.get("days", "").strip())
    secret, token = await users.issue_token(web.services_of(request).db, user, name, expires_at=expires)
    return await _render(request, user, new_token={"name": token.name, "secret": secret})


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str) -> Response:
    user = await web.require_user(request)
    await web.form(request)
    await users.revoke_token(web.services_of(request).db, user, token_id[:200])
    return RedirectResponse(f"{PAGE}#tokens", status_code=303)


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    """A new local user (service admins), as ``POST /users``."""
    user = await web.require_user(request)
    fields = await web.form(request)
    guard.require_service_admin(user, "create users")
    passwords: Passwords = request.app.state.authenticator.passwords
    await users.create_user(
        web.services_of(request).db,
        fields.get("username", "").strip(),
        fields.get("password") or None,
        is_admin=fields.get("is_admin") == "on",
        display_name=fields.get("display_name", "").strip() or None,
        passwords=passwords,
    )
    return RedirectResponse(f"{PAGE}#users", status_code=303)


@router.post("/admin/groups")
async def create_group(request: Request) -> Response:
    """A new research group (service admins), as ``POST /groups``."""
    user = await web.require_user(request)
    fields = await web.form(request)
    guard.require_service_admin(user, "create research groups")
    description = fields.get("description", "").strip()[:1000] or None
    group = await users.create_group(web.services_of(request).db, fields.get("name", "").strip(), description)
    return RedirectResponse(f"{PAGE}#group-{quote(group.name)}", status_code=303)


@router.post("/admin/groups/{name}/members")
async def set_member(request: Request, name: str) -> Response:
    """Add a member or change their role (service admins; the group's admins)."""
    user = await web.require_user(request)
    fields = await web.form(request)
    group = _group_name(name)
    guard.require_group_admin(user, group)
    role = fields.get("role", "member")
    if role not in ("member", "admin"):
        raise InvalidInput("role must be member or admin")
    await users.add_member(web.services_of(request).db, fields.get("username", "").strip(), group, role)
    return RedirectResponse(f"{PAGE}#group-{quote(group)}", status_code=303)


@router.post("/admin/groups/{name}/members/{username}/remove")
async def remove_member(request: Request, name: str, username: str) -> Response:
    user = await web.require_user(request)
    await web.form(request)
    group = _group_name(name)
    guard.require_group_admin(user, group)
    await users.remove_member(web.services_of(request).db, username, group)
    return RedirectResponse(f"{PAGE}#group-{quote(group)}", status_code=303)


def _group_name(raw: str) -> str:
    try:
        return directory.normalize_group_name(raw)
    except InvalidInput as exc:
        raise guard.not_found("research group", raw) from exc


def _expiry(days: str) -> datetime | None:
    if not days:
        return None
    if not days.isdigit() or not 1 <= int(days) <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"expires in: a whole number of days from 1 to {MAX_TOKEN_DAYS}, or empty for never")
    return datetime.now(UTC) + timedelta(days=int(days))


def _token(token: directory.TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": f"fd_{token.prefix}_",
        "created": views.when(token.created_at),
        "expires": views.when(token.expires_at) if token.expires_at else "never",
        "last_used": views.when(token.last_used_at) if token.last_used_at else "never",
        "active": token.revoked_at is None,
    }


def _group(user: Principal, group: directory.GroupRecord, members: list[directory.MembershipRecord]) -> dict[str, Any]:
    return {
        "name": group.name,
        "description": group.description or "",
        "members": [{"username": m.username, "role": m.role} for m in members],
        "manage": user.can_see(group.name) and user.is_group_admin(group.name),
    }


def _person(user: directory.UserRecord, memberships: dict[str, Any]) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name or "",
        "admin": user.is_admin,
        "source": user.source,
        "disabled": user.disabled,
        "groups": ", ".join(f"{g} ({r})" if r == "admin" else g for g, r in sorted(memberships.items())),
    }
