"""Browser sessions of the web UI: signed, stateless values (docs/adr/0016).

A session is ``<payload>.<signature>``: the payload is base64url JSON naming the user, how they
signed in, when it expires and a random nonce; the signature is HMAC-SHA256 under a key derived
from the storage secret (:func:`flowdeck.services.storage.local_secret`), so nothing is stored
and no table is needed. A CSRF token is the HMAC of a random per-browser value under another
derived key (signed double-submit). Each request reloads the user and their groups
(:func:`principal_of`), so a disabled account or a changed membership applies at once.
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

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, Unauthenticated
from flowdeck.services.storage import local_secret
from flowdeck.settings import Settings

LIFETIME_SECONDS = 8 * 3600
_MAX_VALUE = 2048


@dataclass(frozen=True)
class Keys:
    """The two HMAC keys of the UI, derived from the storage secret (never the secret itself:
    a session can then never pass for a storage link, nor the other way round)."""

    session: bytes
    csrf: bytes

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        root = local_secret(settings)
        return cls(session=_derive(root, b"flowdeck ui session v1"), csrf=_derive(root, b"flowdeck ui csrf v1"))


def _derive(root: bytes, label: bytes) -> bytes:
    return hmac.new(root, label, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, how (basic, token, oidc) and until when (epoch seconds)."""

    username: str
    via: str
    expires: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _sign(key: bytes, text: str) -> str:
    return _b64(hmac.new(key, text.encode("ascii"), hashlib.sha256).digest())


def issue(keys: Keys, username: str, via: str, *, now: float | None = None) -> str:
    """A new session value for ``username``."""
    expires = int((now or time.time()) + LIFETIME_SECONDS)
    claims = {"u": username, "v": via, "e": expires, "n": secrets.token_hex(8)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_sign(keys.session, payload)}"


def read(keys: Keys, value: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie value carries, or None if it is missing, forged, malformed or expired."""
    if not value or len(value) > _MAX_VALUE or not value.isascii():
        return None
    payload, _, signature = value.partition(".")
    if not hmac.compare_digest(_sign(keys.session, payload), signature):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        session = Session(str(claims["u"]), str(claims["v"]), int(claims["e"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
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
    if user is None or user.disabled:
        raise Unauthenticated("this session's account no longer signs in: sign in again")
    return Principal(name=user.username, groups=dict(groups), is_admin=user.is_admin, via=session.via)


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
