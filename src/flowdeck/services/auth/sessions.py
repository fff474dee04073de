"""Browser sessions of the web UI: signed, stateless values (docs/adr/0016).

A session is ``<payload>.<signature>``: the payload is base64url JSON naming the user, how they
signed in, when it expires and a random nonce; the signature is HMAC-SHA256 under a key derived
from the storage secret (:func:`flowdeck.services.core.storage.local_secret`), so nothing is stored
and no table is needed. A CSRF token is the HMAC of a random per-browser value under another
derived key (signed double-submit). Each request reloads the user and their groups
(:func:`principal_of`), so a disabled account or a changed membership applies at once; a session
made from an API token names that token's id, and ends when the token is revoked or expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import TokenRecord, UserRecord
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, Unauthenticated
from flowdeck.services.auth import tokens
from flowdeck.services.core.storage import local_secret
from flowdeck.settings import Settings

LIFETIME_SECONDS = 8 * 3600
_MAX_VALUE = 2048


@dataclass(frozen=True)
class Keys:
    """The two HMAC keys of the UI, derived from the storage secret (never the secret itself:
    a session can then never pass for a storage link, nor the other way round)."""

    session: bytes
    csrf: bytes
    oidc: bytes

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        root = local_secret(settings)
        return cls(
            session=_derive(root, b"flowdeck ui session v1"),
            csrf=_derive(root, b"flowdeck ui csrf v1"),
            oidc=_derive(root, b"flowdeck ui oidc sign-in v1"),
        )


def _derive(root: bytes, label: bytes) -> bytes:
    return hmac.new(root, label, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, how (basic, token, oidc), until when (epoch seconds) and, when
    signed in with an API token, that token's id."""

    username: str
    via: str
    expires: int
    token_id: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _sign(key: bytes, text: str) -> str:
    return _b64(hmac.new(key, text.encode("ascii"), hashlib.sha256).digest())


def seal(key: bytes, claims: dict[str, str | int]) -> str:
    """``claims`` as a signed cookie value (readable by the browser, not changeable)."""
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


def unseal(key: bytes, value: str | None) -> dict[str, Any] | None:
    """The claims of a value :func:`seal` made with ``key``, or None if missing, forged or malformed."""
    if not value or len(value) > _MAX_VALUE or not value.isascii():
        return None
    payload, _, signature = value.partition(".")
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def issue(keys: Keys, username: str, via: str, *, token_id: str | None = None, now: float | None = None) -> str:
    """A new session value for ``username`` (``token_id``: the API token it was made from)."""
    expires = int((now or time.time()) + LIFETIME_SECONDS)
    claims: dict[str, str | int] = {"u": username, "v": via, "e": expires, "n": secrets.token_hex(8)}
    if token_id is not None:
        claims["t"] = token_id
    return seal(keys.session, claims)


def read(keys: Keys, value: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie value carries, or None if it is missing, forged, malformed or expired."""
    claims = unseal(keys.session, value)
    if claims is None:
        return None
    try:
        token_id = claims.get("t")
        session = Session(
            str(claims["u"]), str(claims["v"]), int(claims["e"]), None if token_id is None else str(token_id)
        )
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > (now or time.time()) else None


async def principal_of(db: Database, session: Session) -> Principal:
    """The signed-in user as they are now; Unauthenticated if gone or disabled."""
    try:
        username = accounts.normalize_username(session.username)
    except InvalidInput:
        raise Unauthenticated("this session is not valid: sign in again") from None
    async with db.read() as conn:
        user = await accounts.get_user(conn, username)
        groups = await accounts.user_groups(conn, user.id) if user else {}
        token = await accounts.get_token(conn, session.token_id) if user and session.token_id else None
    if user is None or user.disabled:
        raise Unauthenticated("this session's account no longer signs in: sign in again")
    if session.via == "token" or session.token_id is not None:
        _check_token(token, user)
    return Principal(name=user.username, groups=dict(groups), is_admin=user.is_admin, via=session.via)


def _check_token(token: TokenRecord | None, user: UserRecord) -> None:
    """The API token a session was made from must still sign its user in (not revoked, not expired)."""
    if token is None or token.user_id != user.id:
        raise Unauthenticated("the API token of this session is gone: sign in again")
    tokens.check_usable(token, user, token.token_hash, datetime.now(UTC))


async def token_id_of(db: Database, token: str) -> str | None:
    """The id of the API token ``token`` (already verified by the authenticator), or None."""
    async with db.read() as conn:
        found = await accounts.find_token_by_hash(conn, tokens.hash_token(token))
    return None if found is None else found[0].id


def new_csrf_seed() -> str:
    """The random per-browser value the CSRF cookie holds."""
    return secrets.token_urlsafe(24)


def csrf_token(keys: Keys, seed: str) -> str:
    """The form field that proves a POST came from a page flowdeck rendered for this browser."""
    return _sign(keys.csrf, seed)


def csrf_ok(keys: Keys, seed: str | None, presented: str | None) -> bool:
    if not seed or not presented or len(seed) > 128 or not seed.isascii() or not presented.isascii():
        return False
    return hmac.compare_digest(csrf_token(keys, seed), presented)
