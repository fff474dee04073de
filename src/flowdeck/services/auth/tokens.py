"""API tokens for scripts and CLIs: ``fd_<prefix>_<secret>``.

``prefix`` is 8 random hex characters, stored in clear so that a user can tell
their tokens apart in a list (``fd_3f9a1c2e_…``); ``secret`` is 32 random bytes
(256 bits) in URL-safe base64. The whole token is shown once, at creation, and
only its SHA-256 is stored.

A fast hash is right here, unlike for passwords: argon2's slowness exists to
make guessing a *low-entropy* human password expensive. Nobody can enumerate
2**256 secrets at any hash speed, so a slow hash would add nothing but CPU cost
on every request. SHA-256 still means a stolen database holds no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import TokenRecord, UserRecord
from flowdeck.errors import InvalidInput, Unauthenticated

SCHEME_PREFIX = "fd_"
_SHAPE = re.compile(r"fd_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is advice, not audit: spare the writes


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: ``secret`` is the full token text, to show once and forget."""

    secret: str
    prefix: str
    token_hash: str


def looks_like_api_token(credentials: str) -> bool:
    return credentials.startswith(SCHEME_PREFIX)


def generate() -> NewToken:
    prefix = secrets.token_hex(4)
    secret = f"{SCHEME_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewToken(secret=secret, prefix=prefix, token_hash=hash_token(secret))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def parse(token: str) -> str:
    """The token's prefix, or :class:`Unauthenticated` if it is not shaped like one."""
    match = _SHAPE.fullmatch(token)
    if match is None:
        raise Unauthenticated("malformed API token: expected fd_<8 hex>_<43 base64url characters>")
    return match.group(1)


def check_usable(token: TokenRecord, user: UserRecord, presented_hash: str, now: datetime) -> None:
    """Raise :class:`Unauthenticated` unless this token may sign its user in right now."""
    # The row was found by an index lookup on the hash; compare again in
    # constant time so no code path branches on a byte-by-byte string compare.
    if not hmac.compare_digest(token.token_hash, presented_hash):
        raise Unauthenticated("invalid API token")
    if token.revoked_at is not None:
        raise Unauthenticated("this API token has been revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthenticated("this API token has expired")
    if user.disabled:
        raise Unauthenticated("the account this API token belongs to is disabled")


def needs_touch(token: TokenRecord, now: datetime) -> bool:
    return token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY


async def issue(
    db: Database, user: UserRecord, name: str, *, expires_at: datetime | None = None
) -> tuple[str, TokenRecord]:
    """Create a token for ``user``: returns the secret (show it once) and the stored record."""
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must carry a time zone")
        if expires_at <= datetime.now(UTC):
            raise InvalidInput("expires_at must be in the future")
    new = generate()
    async with db.write() as conn:
        record = await accounts.create_token(
            conn, user.id, name=name, prefix=new.prefix, token_hash=new.token_hash, expires_at=expires_at
        )
    return new.secret, record
