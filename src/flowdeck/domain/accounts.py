"""Accounts as the service sees them: users, research groups, memberships and API tokens (typed, frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowdeck.domain.principal import Role


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    display_name: str | None
    password_hash: str | None
    is_admin: bool
    source: str
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> UserRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class GroupRecord:
    id: str
    name: str
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> GroupRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class MembershipRecord:
    username: str
    group: str
    role: Role


@dataclass(frozen=True)
class TokenRecord:
    """An API token's row. The secret itself is never stored; ``token_hash`` is its SHA-256."""

    id: str
    user_id: str
    name: str
    prefix: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> TokenRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})
