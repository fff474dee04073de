"""From an ``Authorization`` header to a :class:`Principal`.

=========  ==========================================================
mode       accepted
=========  ==========================================================
``none``   anything or nothing: everyone is :data:`LOCAL_USER`
``basic``  ``Basic <base64 user:password>`` and ``Bearer fd_…`` API tokens
``oidc``   ``Bearer <JWT>`` from the issuer and ``Bearer fd_…`` API tokens
=========  ==========================================================

A header that cannot be parsed (too long, not printable ASCII, no credentials,
bad base64) is :class:`InvalidInput` (400); one that parses but does not sign
anybody in is :class:`Unauthenticated` (401, send :func:`challenge_headers`).
No message ever quotes the credentials back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import UserRecord
from flowdeck.domain.principal import LOCAL_USER, Principal, Role
from flowdeck.errors import InvalidInput, Unauthenticated
from flowdeck.services.auth import tokens
from flowdeck.services.auth.passwords import MAX_LENGTH, Passwords
from flowdeck.settings import Settings

if TYPE_CHECKING:  # the JWT and cryptography stack is loaded only by services that use OIDC
    from flowdeck.services.auth.oidc import OidcVerifier

MAX_HEADER_LENGTH = 8192
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_BAD_LOGIN = "invalid username or password"


def challenge_headers(settings: Settings) -> dict[str, str]:
    """The ``WWW-Authenticate`` header to send with every 401 in this mode."""
    realm = "".join(ch for ch in settings.service_name if ch.isalnum() or ch in " ._-") or "flowdeck"
    if settings.auth_mode == "basic":
        return {"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8", Bearer realm="{realm}"'}
    if settings.auth_mode == "oidc":
        return {"WWW-Authenticate": f'Bearer realm="{realm}"'}
    return {}


def parse_authorization(header: str | None, hint: str) -> tuple[str, str]:
    """``(scheme in lower case, credentials)``; ``hint`` says what to send when nothing was."""
    if header is None or not header.strip(" "):
        raise Unauthenticated(f"authentication required: {hint}")
    if len(header) > MAX_HEADER_LENGTH:
        raise InvalidInput(f"Authorization header is too long (at most {MAX_HEADER_LENGTH} characters)")
    if _PRINTABLE_ASCII.fullmatch(header) is None:
        raise InvalidInput("Authorization header must be printable ASCII")
    scheme, _, credentials = header.strip(" ").partition(" ")
    credentials = credentials.strip(" ")
    if scheme.lower() not in ("basic", "bearer"):
        raise Unauthenticated(f"unsupported authorization scheme: {hint}")
    if not credentials:
        raise InvalidInput(f"Authorization header has no credentials after '{scheme}'")
    if _TOKEN68.fullmatch(credentials) is None:
        raise InvalidInput("Authorization credentials must be a single base64 or token value")
    return scheme.lower(), credentials


def decode_basic(credentials: str) -> tuple[str, str]:
    """``(username, password)`` from Basic credentials, or :class:`InvalidInput`."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("Basic credentials must be base64 of UTF-8 'username:password'") from exc
    username, colon, password = decoded.partition(":")
    if not colon:
        raise InvalidInput("Basic credentials must be base64 of 'username:password'")
    return username, password


class _VerifiedLogins:
    """Recently verified Basic logins, so a script sending ``-u`` on every call
    does not pay an argon2 hash (~50 ms of CPU and 64 MiB) per request.

    Keyed by an HMAC of username and password under a per-process random key,
    and bound to the stored hash they were verified against: a password change
    (or any rehash) invalidates the entry at once.
    """

    def __init__(self, ttl: float = 60.0, size: int = 1024) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl, self._size = ttl, size
        self._entries: dict[bytes, tuple[str, float]] = {}

    def _digest(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def hit(self, user: UserRecord, password: str) -> bool:
        entry = self._entries.get(self._digest(user.username, password))
        if entry is None or user.password_hash is None or time.monotonic() > entry[1]:
            return False
        return hmac.compare_digest(entry[0], user.password_hash)

    def remember(self, username: str, password: str, stored_hash: str) -> None:
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[self._digest(username, password)] = (stored_hash, time.monotonic() + self._ttl)


class Authenticator:
    """Authenticates requests for one configured mode. Build once per process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        passwords: Passwords | None = None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.mode = settings.auth_mode
        self.db = db
        self._passwords = passwords
        if oidc is None and self.mode == "oidc":
            from flowdeck.services.auth.oidc import OidcVerifier

            oidc = OidcVerifier(settings)
        self.oidc = oidc
        self._logins = _VerifiedLogins()
        self.hint = (
            "send 'Authorization: Basic <base64 username:password>' or 'Authorization: Bearer fd_…' (an API token)"
            if self.mode == "basic"
            else "send 'Authorization: Bearer <token>' with an OIDC access token or a flowdeck API token (fd_…)"
        )

    @property
    def passwords(self) -> Passwords:
        if self._passwords is None:  # built on first use: it hashes a dummy password
            self._passwords = Passwords()
        return self._passwords

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by the header; raises Unauthenticated or InvalidInput."""
        if self.mode == "none":
            return LOCAL_USER
        scheme, credentials = parse_authorization(authorization, self.hint)
        if scheme == "basic":
            if self.mode != "basic":
                raise Unauthenticated(f"this service does not accept Basic credentials: {self.hint}")
            return await self._basic(credentials)
        if tokens.looks_like_api_token(credentials):
            return await self._api_token(credentials)
        if self.oidc is None:
            raise Unauthenticated("bearer tokens must be flowdeck API tokens (fd_…): this service does not use OIDC")
        return await self._oidc(credentials)

    async def _basic(self, credentials: str) -> Principal:
        raw_username, password = decode_basic(credentials)
        try:
            username = accounts.normalize_username(raw_username)
        except InvalidInput as exc:
            raise Unauthenticated(f"invalid username: {exc.detail}") from exc
        if not password or len(password) > MAX_LENGTH:
            raise Unauthenticated(_BAD_LOGIN)
        async with self.db.read() as conn:
            user = await accounts.get_user(conn, username)
            groups = await accounts.user_groups(conn, user.id) if user else {}
        if user is None or not self._logins.hit(user, password):
            user = await self._verify_password(user, password)
        if user.disabled:
            raise Unauthenticated("this account is disabled")
        return _principal(user, groups, "basic")

    async def _verify_password(self, user: UserRecord | None, password: str) -> UserRecord:
        """The user whose password this is, or Unauthenticated (the same way for unknown users)."""
        stored = user.password_hash if user else None
        verified = await self.passwords.verify(stored, password)
        if not verified.ok or user is None or stored is None:
            raise Unauthenticated(_BAD_LOGIN)
        if verified.new_hash is not None:  # parameters were raised since this hash was made
            async with self.db.write() as conn:
                await accounts.update_user(conn, user.id, password_hash=verified.new_hash)
            stored = verified.new_hash
        self._logins.remember(user.username, password, stored)
        return user

    async def _api_token(self, credentials: str) -> Principal:
        tokens.parse(credentials)
        presented = tokens.hash_token(credentials)
        async with self.db.read() as conn:
            found = await accounts.find_token_by_hash(conn, presented)
            groups = await accounts.user_groups(conn, found[1].id) if found else {}
        if found is None:
            raise Unauthenticated("invalid API token")
        token, user = found
        now = datetime.now(UTC)
        tokens.check_usable(token, user, presented, now)
        if tokens.needs_touch(token, now):
            async with self.db.write() as conn:
                await accounts.touch_token(conn, token.id, now)
        return _principal(user, groups, "token")

    async def _oidc(self, credentials: str) -> Principal:
        assert self.oidc is not None
        from flowdeck.services.auth.oidc import sync_user

        identity = await self.oidc.verify(credentials)
        user, groups = await sync_user(self.db, identity)
        return _principal(user, groups, "oidc")

    async def aclose(self) -> None:
        """Close the HTTP client of the OIDC key fetcher, if any."""
        if self.oidc is not None:
            await self.oidc.aclose()


def _principal(user: UserRecord, groups: dict[str, Role], via: str) -> Principal:
    return Principal(name=user.username, groups=dict(groups), is_admin=user.is_admin, via=via)
