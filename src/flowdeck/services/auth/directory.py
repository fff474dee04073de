"""Reading accounts: users with their groups, groups with their members, for the API and the
server CLI alike (each read one transaction). Who may read what is the caller's check
(:mod:`flowdeck.services.auth.guard`)."""

from __future__ import annotations

from collections.abc import Collection

from flowdeck.db import accounts
from flowdeck.db.accounts import normalize_group_name, normalize_username
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import GroupRecord, MembershipRecord, TokenRecord, UserRecord
from flowdeck.domain.principal import Role

__all__ = [
    "GroupRecord",
    "MembershipRecord",
    "TokenRecord",
    "UserRecord",
    "get_user",
    "group_with_members",
    "groups_with_members",
    "normalize_group_name",
    "normalize_username",
    "require_user",
    "user_by_id",
    "user_groups",
    "users_with_groups",
]


async def get_user(db: Database, username: str) -> UserRecord | None:
    async with db.read() as conn:
        return await accounts.get_user(conn, username)


async def require_user(db: Database, username: str) -> UserRecord:
    """The user, or NotFound."""
    async with db.read() as conn:
        return await accounts.require_user(conn, username)


async def user_by_id(db: Database, user_id: str) -> UserRecord | None:
    async with db.read() as conn:
        return await accounts.get_user_by_id(conn, user_id)


async def user_groups(db: Database, user_id: str) -> dict[str, Role]:
    """The user's groups and their role in each."""
    async with db.read() as conn:
        return dict(await accounts.user_groups(conn, user_id))


async def users_with_groups(db: Database) -> list[tuple[UserRecord, dict[str, Role]]]:
    """Every user, with their groups."""
    async with db.read() as conn:
        return [(u, dict(await accounts.user_groups(conn, u.id))) for u in await accounts.list_users(conn)]


async def group_with_members(db: Database, group: GroupRecord) -> tuple[GroupRecord, list[MembershipRecord]]:
    async with db.read() as conn:
        return group, await accounts.group_members(conn, group.id)


async def groups_with_members(
    db: Database, names: Collection[str] | None = None
) -> list[tuple[GroupRecord, list[MembershipRecord]]]:
    """The groups named (all when None), with their members."""
    async with db.read() as conn:
        found = await accounts.list_groups(conn, names)
        return [(g, await accounts.group_members(conn, g.id)) for g in found]
