"""Managing accounts: users, passwords, memberships and API tokens.

These functions do the work; callers decide who may ask, with
:mod:`flowdeck.services.auth.guard` (the API) or by being the server CLI.
Token functions take the asking principal because "someone else's token"
must look missing, which only they can know.
"""

from __future__ import annotations

from datetime import datetime

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import GroupRecord, TokenRecord, UserRecord
from flowdeck.domain.principal import Principal
from flowdeck.errors import NotFound
from flowdeck.services.auth import guard, tokens
from flowdeck.services.auth.passwords import Passwords, check_policy


async def create_user(
    db: Database,
    username: str,
    password: str | None,
    *,
    is_admin: bool = False,
    display_name: str | None = None,
    passwords: Passwords | None = None,
) -> UserRecord:
    """A new local user; ``password=None`` makes one who signs in by API token only."""
    password_hash = None
    if password is not None:
        password_hash = await (passwords or Passwords()).hash(check_policy(password))
    async with db.write() as conn:
        return await accounts.create_user(
            conn, username, password_hash=password_hash, display_name=display_name, is_admin=is_admin
        )


async def set_password(db: Database, username: str, password: str, *, passwords: Passwords | None = None) -> None:
    """Replace a local user's password (signed-in sessions by Basic end at their next request)."""
    password_hash = await (passwords or Passwords()).hash(check_policy(password))
    async with db.write() as conn:
        user = await accounts.require_user(conn, username)
        await accounts.update_user(conn, user.id, password_hash=password_hash)


async def create_group(db: Database, name: str, description: str | None = None) -> GroupRecord:
    async with db.write() as conn:
        return await accounts.create_group(conn, name, description)


async def add_member(db: Database, username: str, group: str, role: str = "member") -> None:
    """Put a user in a group with ``role`` (member or admin), or change their role."""
    async with db.write() as conn:
        user = await accounts.require_user(conn, username)
        found = await accounts.get_group(conn, accounts.normalize_group_name(group))
        if found is None:
            raise guard.not_found("research group", group)
        await accounts.set_membership(conn, user.id, found.id, role)


async def remove_member(db: Database, username: str, group: str) -> None:
    async with db.write() as conn:
        user = await accounts.require_user(conn, username)
        found = await accounts.get_group(conn, accounts.normalize_group_name(group))
        if found is None or not await accounts.remove_membership(conn, user.id, found.id):
            raise NotFound(f"'{user.username}' is not a member of research group '{group}'")


async def issue_token(
    db: Database,
    principal: Principal,
    name: str,
    *,
    expires_at: datetime | None = None,
    username: str | None = None,
) -> tuple[str, TokenRecord]:
    """A new API token for the caller (or, for an admin, for ``username``).

    Returns the secret, to show exactly once, and the stored record.
    """
    owner = username or principal.name
    guard.require_self_or_admin(principal, accounts.normalize_username(owner))
    async with db.read() as conn:
        user = await accounts.require_user(conn, owner)
    return await tokens.issue(db, user, name, expires_at=expires_at)


async def list_tokens(db: Database, principal: Principal, username: str | None = None) -> list[TokenRecord]:
    """The caller's tokens (or, for an admin, ``username``'s); never their secrets."""
    owner = username or principal.name
    guard.require_self_or_admin(principal, accounts.normalize_username(owner))
    async with db.read() as conn:
        user = await accounts.require_user(conn, owner)
        return await accounts.list_tokens(conn, user.id)


async def revoke_token(db: Database, principal: Principal, token_id: str) -> TokenRecord:
    """Revoke a token of the caller's (any token, for an admin); others' look missing."""
    async with db.write() as conn:
        token = await accounts.get_token(conn, token_id)
        owner = await accounts.get_user_by_id(conn, token.user_id) if token else None
        # Someone else's token gets the very answer a missing one does: its id, not its owner's name.
        if token is None or owner is None or not (principal.sees_all or principal.name == owner.username):
            raise guard.not_found("API token", token_id)
        await accounts.revoke_token(conn, token.id)
        return await accounts.get_token(conn, token.id) or token
