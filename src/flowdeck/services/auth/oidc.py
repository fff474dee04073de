"""OIDC bearer tokens: JWTs verified against the issuer's published keys.

A token is accepted only when its signature verifies with a key from the
issuer's JWKS, under an algorithm from ``settings.oidc_algorithms`` (never
``none`` and never an HMAC algorithm: an HS256 token "signed" with the
issuer's *public* key would otherwise verify), and when its issuer, audience
and expiry (30 s leeway for clock skew) match. Users are then upserted with
source ``oidc`` and their research groups synced from the configured claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import UserRecord
from flowdeck.domain.principal import Role
from flowdeck.errors import ConfigurationError, Conflict, InvalidInput, Unauthenticated
from flowdeck.services.auth.jwks import IdentityProviderUnavailable, JwksCache, require_safe_url
from flowdeck.settings import Settings

__all__ = ["IdentityProviderUnavailable", "JwksCache", "OidcIdentity", "OidcVerifier", "sync_user"]

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 30
MAX_GROUPS = 256


@dataclass(frozen=True)
class OidcIdentity:
    """Who a verified token names. ``is_admin`` is ``None`` when no admin group is configured."""

    subject: str
    username: str
    display_name: str | None
    groups: frozenset[str]
    is_admin: bool | None


def allowed_algorithms(settings: Settings) -> tuple[str, ...]:
    """The configured algorithms, or :class:`ConfigurationError` if any is unsafe or unknown."""
    refused = [alg for alg in settings.oidc_algorithms if alg not in ASYMMETRIC_ALGORITHMS]
    if refused or not settings.oidc_algorithms:
        raise ConfigurationError(
            f"oidc_algorithms may list only asymmetric algorithms ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); "
            f"refused: {', '.join(refused) or '(empty list)'}"
        )
    return tuple(settings.oidc_algorithms)


_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet (nbf/iat in the future)"),
    (jwt.InvalidAudienceError, "token audience is not this service"),
    (jwt.InvalidIssuerError, "token issuer is not the one this service trusts"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
)


def _decode_error_message(exc: jwt.PyJWTError) -> str:
    # Fixed texts, not PyJWT's own: they never quote the token back.
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the required '{exc.claim}' claim"
    for kind, message in _DECODE_ERRORS:
        if isinstance(exc, kind):
            return message
    return "token is malformed"


class OidcVerifier:
    """Verifies bearer JWTs and turns their claims into an :class:`OidcIdentity`."""

    def __init__(self, settings: Settings, *, jwks: JwksCache | None = None) -> None:
        if not settings.oidc_issuer:
            raise ConfigurationError("auth_mode=oidc needs oidc_issuer")
        if not settings.oidc_audience:
            raise ConfigurationError(
                "auth_mode=oidc needs oidc_audience: without it a token minted for any other application of the issuer would be accepted"
            )
        require_safe_url(settings.oidc_issuer, "oidc_issuer")
        if settings.oidc_jwks_url:
            require_safe_url(settings.oidc_jwks_url, "oidc_jwks_url")
        self.settings = settings
        self.algorithms = allowed_algorithms(settings)
        self.jwks = jwks or JwksCache(settings)

    async def verify(self, token: str) -> OidcIdentity:
        """The identity in a valid token, or :class:`Unauthenticated` saying what is wrong."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("bearer token is neither a JWT nor a flowdeck API token (fd_…)") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated(f"token algorithm is not accepted; this service accepts {', '.join(self.algorithms)}")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("token key id (kid) must be a string")
        key = await self.jwks.key_for(kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.oidc_audience,
                issuer=self.settings.oidc_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_decode_error_message(exc)) from exc
        return self.identity(claims)

    def identity(self, claims: dict[str, Any]) -> OidcIdentity:
        claim = self.settings.oidc_username_claim
        try:
            username = accounts.normalize_username(_claim(claims, claim))
        except InvalidInput as exc:
            raise Unauthenticated(f"the token's '{claim}' claim is not a usable username: {exc.detail}") from exc
        raw_groups = _string_list(_claim(claims, self.settings.oidc_groups_claim))
        admin_group = self.settings.oidc_admin_group
        name = claims.get("name")
        return OidcIdentity(
            subject=str(claims["sub"]),
            username=username,
            display_name=name if isinstance(name, str) and name.isprintable() and 0 < len(name) <= 128 else None,
            groups=frozenset(_research_groups(raw_groups, admin_group)),
            is_admin=None if admin_group is None else admin_group in raw_groups,
        )

    async def aclose(self) -> None:
        await self.jwks.aclose()


def _claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by dotted path (``realm_access.roles``) when no claim has that name."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value[:MAX_GROUPS] if isinstance(item, str)]
    return []


def _research_groups(raw: list[str], admin_group: str | None) -> list[str]:
    groups = []
    for name in raw:
        if name == admin_group:
            continue
        try:  # Keycloak sends full paths ("/lab"): the leading slash is not part of the name
            groups.append(accounts.normalize_group_name(name.removeprefix("/")))
        except InvalidInput:
            log.info("ignored a group claim entry that is not a valid research group name")
    return groups


async def sync_user(db: Database, identity: OidcIdentity) -> tuple[UserRecord, dict[str, Role]]:
    """The identity's user and groups, created or brought in step with the token.

    Reads first and writes only when something changed, so a steady user costs
    one read per request.
    """
    async with db.read() as conn:
        user = await accounts.get_user(conn, identity.username)
        groups = await accounts.user_groups(conn, user.id) if user else {}
    if user is not None and _in_step(user, groups, identity):
        return user, groups
    for attempt in range(2):
        try:
            async with db.write() as conn:
                return await _upsert(conn, identity)
        except Conflict:  # a concurrent first sign-in created the same user or group
            if attempt:
                raise
    raise AssertionError("unreachable")


def _in_step(user: UserRecord, groups: dict[str, Role], identity: OidcIdentity) -> bool:
    _check_account(user)
    admin_ok = identity.is_admin is None or identity.is_admin == user.is_admin
    return admin_ok and set(groups) == identity.groups


def _check_account(user: UserRecord) -> None:
    if user.source != "oidc":
        raise Unauthenticated(
            f"'{user.username}' is a local account; sign in with its password or an API token, not an OIDC token"
        )
    if user.disabled:
        raise Unauthenticated("this account is disabled")


async def _upsert(conn: AsyncConnection, identity: OidcIdentity) -> tuple[UserRecord, dict[str, Role]]:
    user = await accounts.get_user(conn, identity.username)
    if user is None:
        user = await accounts.create_user(
            conn,
            identity.username,
            display_name=identity.display_name,
            is_admin=bool(identity.is_admin),
            source="oidc",
        )
    _check_account(user)
    if identity.is_admin is not None and identity.is_admin != user.is_admin:
        await accounts.update_user(conn, user.id, is_admin=identity.is_admin)
        user = await accounts.get_user_by_id(conn, user.id) or user
    current = await accounts.user_groups(conn, user.id)
    for name in identity.groups - set(current):
        group = await accounts.ensure_group(conn, name)
        await accounts.set_membership(conn, user.id, group.id, "member")
    for group in await accounts.list_groups(conn, set(current) - identity.groups):
        await accounts.remove_membership(conn, user.id, group.id)
    return user, await accounts.user_groups(conn, user.id)
