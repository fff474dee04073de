"""Accounts: who am I, users, research groups and their members, API tokens.

Who may do what is decided by :mod:`flowdeck.services.auth.guard`: service
admins manage users and groups, group admins their group's memberships, and
everyone their own password and API tokens. Anything outside the caller's
sight is a 404. Passwords and token secrets are never echoed, except a new
token's secret, once, in the answer that creates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.api.deps import PrincipalDep, ServicesDep
from flowdeck.api.http_body import body_schema, json_model
from flowdeck.domain.principal import Principal
from flowdeck.errors import Conflict, Forbidden, InvalidInput, NotFound
from flowdeck.services.auth import directory, guard, users
from flowdeck.services.auth.directory import GroupRecord, MembershipRecord, TokenRecord, UserRecord
from flowdeck.services.auth.passwords import Passwords

router = APIRouter(tags=["accounts"])
NO_STORE = {"Cache-Control": "no-store"}


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=200)
    password: str | None = Field(
        default=None, max_length=4096, description="omit for a user who signs in by API token only"
    )
    is_admin: bool = False
    display_name: str | None = Field(default=None, max_length=200)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=4096)
    current_password: str | None = Field(default=None, max_length=4096, description="required when changing your own")


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=200)
    role: Literal["member", "admin"] = "member"


class NewApiToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    expires_at: datetime | None = None
    username: str | None = Field(default=None, max_length=200, description="service admins: make it for this user")


def _passwords(request: Request) -> Passwords:
    """The authenticator's hasher, so stored hashes use the parameters sign-in checks."""
    passwords: Passwords = request.app.state.authenticator.passwords
    return passwords


def _user_body(user: UserRecord, groups: Mapping[str, str]) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "is_admin": user.is_admin,
        "source": user.source,
        "disabled": user.disabled,
        "has_password": user.password_hash is not None,
        "created_at": user.created_at.isoformat(),
        "groups": [{"name": name, "role": role} for name, role in sorted(groups.items())],
    }


def _token_body(token: TokenRecord, username: str) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": token.id,
        "name": token.name,
        "user": username,
        "prefix": f"fd_{token.prefix}_",
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
        "active": token.revoked_at is None,
    }


def _group_body(group: GroupRecord, members: list[MembershipRecord]) -> dict[str, Any]:
    return {
        "name": group.name,
        "description": group.description,
        "created_at": group.created_at.isoformat(),
        "members": [{"username": m.username, "role": m.role} for m in members],
    }


@router.get("/me")
async def me(principal: PrincipalDep) -> JSONResponse:
    """Who the service takes the caller for."""
    return JSONResponse(
        {
            "name": principal.name,
            "groups": [{"name": name, "role": role} for name, role in sorted(principal.groups.items())],
            "is_admin": principal.sees_all,
            "via": principal.via,
        }
    )


@router.post("/users", status_code=201, openapi_extra=body_schema(NewUser))
async def create_user(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[NewUser, Depends(json_model(NewUser))],
) -> JSONResponse:
    """A new local user (service admins)."""
    guard.require_service_admin(principal, "create users")
    user = await users.create_user(
        services.db,
        body.username,
        body.password,
        is_admin=body.is_admin,
        display_name=body.display_name,
        passwords=_passwords(request),
    )
    return JSONResponse(_user_body(user, {}), status_code=201, headers={"Location": f"/users/{user.username}"})


@router.get("/users")
async def list_users(services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Every user (service admins)."""
    guard.require_service_admin(principal, "list users")
    body = [_user_body(u, groups) for u, groups in await directory.users_with_groups(services.db)]
    return JSONResponse({"users": body, "total": len(body)})


async def _visible_user(services: ServicesDep, principal: Principal, name: str) -> UserRecord:
    """The named user if the caller is them or a service admin; otherwise a 404, as for nobody."""
    try:
        username = directory.normalize_username(name)
    except InvalidInput as exc:
        raise guard.not_found("user", name) from exc
    guard.require_self_or_admin(principal, username)
    user = await directory.get_user(services.db, username)
    if user is None:
        raise guard.not_found("user", username)
    return user


@router.get("/users/{name}")
async def get_user(name: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """A user: yourself, or anyone for a service admin."""
    user = await _visible_user(services, principal, name)
    return JSONResponse(_user_body(user, await directory.user_groups(services.db, user.id)))


@router.put("/users/{name}/password", status_code=204, openapi_extra=body_schema(PasswordChange))
async def set_password(
    name: str,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[PasswordChange, Depends(json_model(PasswordChange))],
) -> Response:
    """Set a password: service admins for anyone; users for themselves, giving the current one."""
    user = await _visible_user(services, principal, name)
    if user.source != "local":
        raise Conflict(f"'{user.username}' signs in through {user.source}; flowdeck keeps no password for them")
    if not principal.sees_all and user.password_hash is not None:
        verified = await _passwords(request).verify(user.password_hash, body.current_password or "")
        if not body.current_password or not verified.ok:
            raise Forbidden("current_password is missing or wrong")
    await users.set_password(services.db, user.username, body.password, passwords=_passwords(request))
    return Response(status_code=204)


@router.post("/groups", status_code=201, openapi_extra=body_schema(NewGroup))
async def create_group(
    services: ServicesDep, principal: PrincipalDep, body: Annotated[NewGroup, Depends(json_model(NewGroup))]
) -> JSONResponse:
    """A new research group (service admins)."""
    guard.require_service_admin(principal, "create research groups")
    group = await users.create_group(services.db, body.name, body.description)
    return JSONResponse(
        _group_body(*await directory.group_with_members(services.db, group)),
        status_code=201,
        headers={"Location": f"/groups/{group.name}"},
    )


@router.get("/groups")
async def list_groups(services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Research groups with their members: all for service admins, your own for everyone else."""
    names = guard.visible_groups(principal)
    body = [_group_body(g, members) for g, members in await directory.groups_with_members(services.db, names)]
    return JSONResponse({"groups": body, "total": len(body)})


def _group_name(raw: str) -> str:
    try:
        return directory.normalize_group_name(raw)
    except InvalidInput as exc:
        raise guard.not_found("research group", raw) from exc


@router.post("/groups/{name}/members", openapi_extra=body_schema(NewMember))
async def add_member(
    name: str,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[NewMember, Depends(json_model(NewMember))],
) -> JSONResponse:
    """Add a user to a group, or change their role (service admins; the group's admins)."""
    group = _group_name(name)
    guard.require_group_admin(principal, group)
    await users.add_member(services.db, body.username, group, body.role)
    return JSONResponse({"group": group, "username": directory.normalize_username(body.username), "role": body.role})


@router.delete("/groups/{name}/members/{username}", status_code=204)
async def remove_member(name: str, username: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Take a user out of a group (service admins; the group's admins)."""
    group = _group_name(name)
    guard.require_group_admin(principal, group)
    try:
        canonical = directory.normalize_username(username)
    except InvalidInput as exc:
        raise NotFound(f"'{username}' is not a member of research group '{group}'") from exc
    await users.remove_member(services.db, canonical, group)
    return Response(status_code=204)


@router.post("/tokens", status_code=201, openapi_extra=body_schema(NewApiToken))
async def create_token(
    services: ServicesDep, principal: PrincipalDep, body: Annotated[NewApiToken, Depends(json_model(NewApiToken))]
) -> JSONResponse:
    """A new API token. Its secret is in this answer and nowhere else, ever."""
    secret, token = await users.issue_token(
        services.db, principal, body.name, expires_at=body.expires_at, username=body.username
    )
    owner = directory.normalize_username(body.username or principal.name)
    answer = {**_token_body(token, owner), "token": secret}
    return JSONResponse(answer, status_code=201, headers=NO_STORE)


@router.get("/tokens")
async def list_tokens(
    services: ServicesDep,
    principal: PrincipalDep,
    username: Annotated[str | None, Query(max_length=200, description="service admins: this user's tokens")] = None,
) -> JSONResponse:
    """Your API tokens (revoked ones too, for the record), never their secrets."""
    found = await users.list_tokens(services.db, principal, username)
    owner = directory.normalize_username(username or principal.name)
    body = [_token_body(t, owner) for t in found]
    return JSONResponse({"tokens": body, "total": len(body)})


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    """Revoke one of your API tokens (any, for a service admin); it stays listed as revoked."""
    token = await users.revoke_token(services.db, principal, token_id[:200])
    owner = await directory.user_by_id(services.db, token.user_id)
    return JSONResponse(_token_body(token, owner.username if owner else ""))
