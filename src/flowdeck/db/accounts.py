"""Users, research groups, memberships and API tokens: rows in, records out.

Names are canonical before they reach a row:

- **usernames**: Unicode NFKC, then case-folded, then NFKC again (an
  approximation of Unicode's ``NFKC_Casefold``), and the result must be plain
  ASCII: letters, digits and ``. _ - @ +``, starting with a letter or digit,
  at most 128 characters. NFKC folds look-alike *forms* of the same letters
  (full-width letters, ligatures, the Kelvin sign) onto one name; the
  ASCII rule refuses look-alike *letters* from other scripts (a Cyrillic ``a``, U+0430),
  invisible characters (zero-width joiners, bidi controls), control characters
  and whitespace, none of which NFKC removes. Surrounding spaces are refused,
  not stripped, so what is stored is exactly what the user must type.
- **research group names**: the same folding, then lower-case ASCII letters,
  digits and ``. _ -``, at most 128 characters (``cancer_genomics_lab``).

Nothing here commits: callers hold the transaction (``Database.write()``).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import api_tokens, memberships, research_groups, users
from flowdeck.domain.accounts import GroupRecord, MembershipRecord, TokenRecord, UserRecord
from flowdeck.domain.principal import Role
from flowdeck.errors import Conflict, InvalidInput, NotFound

MAX_NAME = 128
_RAW_NAME_LIMIT = 512  # refuse before normalising: NFKC can expand a string 18-fold
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]*")
_GROUP = re.compile(r"[a-z0-9][a-z0-9._-]*")
ROLES: frozenset[str] = frozenset({"member", "admin"})
SOURCES: frozenset[str] = frozenset({"local", "oidc"})


def _fold(raw: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())


def _canonical(raw: object, what: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidInput(f"{what} is required")
    if len(raw) > _RAW_NAME_LIMIT:
        raise InvalidInput(f"{what} is too long (at most {MAX_NAME} characters)")
    folded = _fold(raw)
    if not folded.isascii() or not folded.isprintable():
        raise InvalidInput(
            f"{what} may hold only ASCII {allowed}; other scripts, invisible and "
            "control characters are refused so that no two names look alike"
        )
    if len(folded) > MAX_NAME:
        raise InvalidInput(f"{what} is too long (at most {MAX_NAME} characters)")
    if pattern.fullmatch(folded) is None:
        raise InvalidInput(f"{what} may hold only {allowed}, starting with a letter or digit")
    return folded


def normalize_username(raw: object) -> str:
    """The canonical form of a username, or :class:`InvalidInput` saying why not."""
    return _canonical(raw, "username", _USERNAME, "letters, digits and . _ - @ +")


def normalize_group_name(raw: object) -> str:
    """The canonical form of a research group name, or :class:`InvalidInput`."""
    return _canonical(raw, "research group name", _GROUP, "letters, digits and . _ -")


def _check_label(value: str, what: str) -> str:
    if not value or len(value) > MAX_NAME or not value.isprintable() or value != value.strip():
        raise InvalidInput(f"{what} must be 1 to {MAX_NAME} printable characters without surrounding spaces")
    return value


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------- records


# ----------------------------------------------------------------------- users
async def create_user(
    conn: AsyncConnection,
    username: str,
    *,
    password_hash: str | None = None,
    display_name: str | None = None,
    is_admin: bool = False,
    source: str = "local",
) -> UserRecord:
    """Insert a user; :class:`Conflict` when the (canonical) name is taken."""
    name = normalize_username(username)
    if source not in SOURCES:
        raise InvalidInput(f"user source must be one of {sorted(SOURCES)}")
    if display_name is not None:
        _check_label(display_name, "display name")
    if await get_user(conn, name) is not None:
        raise Conflict(f"user '{name}' already exists")
    values: dict[str, Any] = {
        "id": _new_id(),
        "username": name,
        "display_name": display_name,
        "password_hash": password_hash,
        "is_admin": is_admin,
        "source": source,
        "disabled": False,
        "created_at": _now(),
    }
    try:
        await conn.execute(users.insert().values(**values))
    except sa.exc.IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"user '{name}' already exists") from exc
    return UserRecord(**values)


async def get_user(conn: AsyncConnection, username: str) -> UserRecord | None:
    """The user named ``username`` (already canonical), or ``None``."""
    row = (await conn.execute(sa.select(users).where(users.c.username == username))).mappings().first()
    return None if row is None else UserRecord.of(row)


async def get_user_by_id(conn: AsyncConnection, user_id: str) -> UserRecord | None:
    row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).mappings().first()
    return None if row is None else UserRecord.of(row)


async def require_user(conn: AsyncConnection, username: str) -> UserRecord:
    """The user, or :class:`NotFound` (the name is normalised first)."""
    user = await get_user(conn, normalize_username(username))
    if user is None:
        raise NotFound(f"user '{username}' not found")
    return user


async def list_users(conn: AsyncConnection, *, in_groups: Collection[str] | None = None) -> list[UserRecord]:
    """All users by name, or only those in one of ``in_groups``."""
    query = sa.select(users).order_by(users.c.username)
    if in_groups is not None:
        member_ids = (
            sa.select(memberships.c.user_id)
            .join(research_groups, research_groups.c.id == memberships.c.group_id)
            .where(research_groups.c.name.in_(list(in_groups)))
        )
        query = query.where(users.c.id.in_(member_ids))
    return [UserRecord.of(row) for row in (await conn.execute(query)).mappings()]


async def update_user(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    """Set some of ``password_hash``, ``display_name``, ``is_admin``, ``disabled``."""
    unknown = set(values) - {"password_hash", "display_name", "is_admin", "disabled"}
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if values:
        await conn.execute(users.update().where(users.c.id == user_id).values(**values))


async def delete_user(conn: AsyncConnection, user_id: str) -> bool:
    """Delete a user with their memberships and tokens; False if there was none."""
    # Deleted explicitly: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON.
    await conn.execute(memberships.delete().where(memberships.c.user_id == user_id))
    await conn.execute(api_tokens.delete().where(api_tokens.c.user_id == user_id))
    result = await conn.execute(users.delete().where(users.c.id == user_id))
    return result.rowcount > 0


async def count_admins(conn: AsyncConnection) -> int:
    query = sa.select(sa.func.count()).select_from(users).where(users.c.is_admin.is_(True))
    return int((await conn.execute(query)).scalar_one())


# ---------------------------------------------------------------------- groups
async def create_group(conn: AsyncConnection, name: str, description: str | None = None) -> GroupRecord:
    """Insert a research group; :class:`Conflict` when the name is taken."""
    canonical = normalize_group_name(name)
    if await get_group(conn, canonical) is not None:
        raise Conflict(f"research group '{canonical}' already exists")
    values: dict[str, Any] = {"id": _new_id(), "name": canonical, "description": description, "created_at": _now()}
    try:
        await conn.execute(research_groups.insert().values(**values))
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"research group '{canonical}' already exists") from exc
    return GroupRecord(**values)


async def get_group(conn: AsyncConnection, name: str) -> GroupRecord | None:
    """The group named ``name`` (already canonical), or ``None``."""
    query = sa.select(research_groups).where(research_groups.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else GroupRecord.of(row)


async def ensure_group(conn: AsyncConnection, name: str) -> GroupRecord:
    """The group, created if missing (for groups an identity provider names)."""
    canonical = normalize_group_name(name)
    return await get_group(conn, canonical) or await create_group(conn, canonical)


async def list_groups(conn: AsyncConnection, names: Collection[str] | None = None) -> list[GroupRecord]:
    """All groups by name, or only those named in ``names``."""
    query = sa.select(research_groups).order_by(research_groups.c.name)
    if names is not None:
        query = query.where(research_groups.c.name.in_(list(names)))
    return [GroupRecord.of(row) for row in (await conn.execute(query)).mappings()]


async def delete_group(conn: AsyncConnection, group_id: str) -> bool:
    await conn.execute(memberships.delete().where(memberships.c.group_id == group_id))
    result = await conn.execute(research_groups.delete().where(research_groups.c.id == group_id))
    return result.rowcount > 0


# ----------------------------------------------------------------- memberships
async def set_membership(conn: AsyncConnection, user_id: str, group_id: str, role: str) -> None:
    """Make the user a ``role`` of the group, replacing any earlier role."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {sorted(ROLES)}")
    key = (memberships.c.user_id == user_id) & (memberships.c.group_id == group_id)
    updated = await conn.execute(memberships.update().where(key).values(role=role))
    if updated.rowcount == 0:
        await conn.execute(memberships.insert().values(user_id=user_id, group_id=group_id, role=role))


async def remove_membership(conn: AsyncConnection, user_id: str, group_id: str) -> bool:
    key = (memberships.c.user_id == user_id) & (memberships.c.group_id == group_id)
    return (await conn.execute(memberships.delete().where(key))).rowcount > 0


async def user_groups(conn: AsyncConnection, user_id: str) -> dict[str, Role]:
    """The user's groups by name, with their role in each."""
    query = (
        sa.select(research_groups.c.name, memberships.c.role)
        .join(research_groups, research_groups.c.id == memberships.c.group_id)
        .where(memberships.c.user_id == user_id)
    )
    return {name: cast(Role, role) for name, role in (await conn.execute(query)).all()}


async def group_members(conn: AsyncConnection, group_id: str) -> list[MembershipRecord]:
    query = (
        sa.select(users.c.username, research_groups.c.name, memberships.c.role)
        .join(users, users.c.id == memberships.c.user_id)
        .join(research_groups, research_groups.c.id == memberships.c.group_id)
        .where(memberships.c.group_id == group_id)
        .order_by(users.c.username)
    )
    return [MembershipRecord(u, g, cast(Role, r)) for u, g, r in (await conn.execute(query)).all()]


# ------------------------------------------------------------------ API tokens
async def create_token(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    prefix: str,
    token_hash: str,
    expires_at: datetime | None = None,
) -> TokenRecord:
    """Store a new token's hash (the caller made the secret and shows it once)."""
    values: dict[str, Any] = {
        "id": _new_id(),
        "user_id": user_id,
        "name": _check_label(name, "token name"),
        "prefix": prefix,
        "token_hash": token_hash,
        "created_at": _now(),
        "expires_at": expires_at,
        "last_used_at": None,
        "revoked_at": None,
    }
    await conn.execute(api_tokens.insert().values(**values))
    return TokenRecord(**values)


async def list_tokens(conn: AsyncConnection, user_id: str) -> list[TokenRecord]:
    query = sa.select(api_tokens).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.created_at)
    return [TokenRecord.of(row) for row in (await conn.execute(query)).mappings()]


async def get_token(conn: AsyncConnection, token_id: str) -> TokenRecord | None:
    row = (await conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))).mappings().first()
    return None if row is None else TokenRecord.of(row)


async def find_token_by_hash(conn: AsyncConnection, token_hash: str) -> tuple[TokenRecord, UserRecord] | None:
    """The token with this hash and its user, or ``None``."""
    token_row = (
        (await conn.execute(sa.select(api_tokens).where(api_tokens.c.token_hash == token_hash))).mappings().first()
    )
    if token_row is None:
        return None
    token = TokenRecord.of(token_row)
    user = await get_user_by_id(conn, token.user_id)
    return None if user is None else (token, user)


async def revoke_token(conn: AsyncConnection, token_id: str, at: datetime | None = None) -> bool:
    """Mark a token revoked (kept for the audit); False if unknown or already revoked."""
    query = (
        api_tokens.update()
        .where((api_tokens.c.id == token_id) & api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at or _now())
    )
    return (await conn.execute(query)).rowcount > 0


async def touch_token(conn: AsyncConnection, token_id: str, at: datetime | None = None) -> None:
    await conn.execute(api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=at or _now()))
