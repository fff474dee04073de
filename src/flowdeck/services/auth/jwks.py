"""The issuer's signing keys (JWKS): discovered, fetched with httpx, cached, refreshed."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from jwt import PyJWK

from flowdeck.errors import ConfigurationError, FlowdeckError, Unauthenticated
from flowdeck.settings import Settings

log = logging.getLogger(__name__)


class IdentityProviderUnavailable(FlowdeckError):
    """The issuer's keys could not be fetched: the token may be fine, the check is impossible."""

    status_code = 503
    title = "Identity provider unavailable"


def require_safe_url(url: str, setting: str) -> None:
    """Keys must come over https (a tampered JWKS would let anyone mint tokens); http only on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    loopback = host == "localhost" or _is_loopback_ip(host)
    if parts.scheme != "http" or not loopback:
        raise ConfigurationError(f"{setting} must be an https:// URL (plain http only on loopback)")


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JwksCache:
    """The issuer's signing keys, fetched on first use and kept.

    Keys are fetched again when they are older than ``max_age`` and when a
    token names a key id that is not known (rotation). Unknown-kid refreshes
    happen at most once every ``min_interval`` seconds, so a flood of tokens
    with made-up key ids costs the issuer one request per interval; after a
    failed fetch, the issuer is left alone for ``min_interval`` too, and keys
    fetched earlier stay in use.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        min_interval: float = 60.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = (settings.oidc_issuer or "").rstrip("/")
        self.jwks_url = settings.oidc_jwks_url
        self.min_interval = min_interval
        self.max_age = max_age
        self._clock = clock
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._built: dict[tuple[str | None, str], PyJWK] = {}
        self._fetched_at: float | None = None
        self._kid_refresh_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The key that should have signed a token with this ``kid`` and ``alg``."""
        if self._stale():
            await self._refresh(for_kid=None)
        elif kid is not None and kid not in self._keys:
            await self._refresh(for_kid=kid)
        jwk = self._pick(kid)
        if jwk.get("alg") not in (None, alg):
            raise Unauthenticated("token algorithm does not match its signing key")
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError as exc:  # e.g. an ES256 header naming an RSA key
                raise Unauthenticated("token algorithm does not match its signing key") from exc
            self._built[(kid, alg)] = built
        return built

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self.max_age

    def _pick(self, kid: str | None) -> dict[str, Any]:
        if kid is not None:
            if kid not in self._keys:
                raise Unauthenticated("token is signed with a key the issuer does not publish (unknown kid)")
            return self._keys[kid]
        if len(self._keys) != 1:
            raise Unauthenticated("token has no key id (kid) and the issuer publishes several keys")
        return next(iter(self._keys.values()))

    async def _refresh(self, for_kid: str | None) -> None:
        async with self._lock:  # one fetch at a time; waiters reuse its result
            now = self._clock()
            if for_kid is not None:
                recent = self._kid_refresh_at is not None and now - self._kid_refresh_at < self.min_interval
                if for_kid in self._keys or recent:
                    return
                self._kid_refresh_at = now
            elif not self._stale():
                return
            if self._failed_at is not None and now - self._failed_at < self.min_interval:
                if self._fetched_at is None:
                    raise IdentityProviderUnavailable("the identity provider's keys could not be fetched; retry later")
                return
            try:
                keys = await self._fetch()
            except IdentityProviderUnavailable:
                self._failed_at = now
                if self._fetched_at is None:
                    raise
                log.warning("refreshing the issuer's keys failed; the keys fetched before stay in use")
                return
            self._keys, self._built, self._fetched_at, self._failed_at = keys, {}, now, None

    async def _fetch(self) -> dict[str | None, dict[str, Any]]:
        self.fetches += 1
        url = self.jwks_url or await self._discover()
        document = await self._get_json(url)
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise IdentityProviderUnavailable("the issuer's JWKS document has no 'keys' list")
        keys: dict[str | None, dict[str, Any]] = {}
        for jwk in raw_keys:
            # Symmetric ("oct") keys are never legitimately published; refusing
            # them closes the HMAC-with-public-material door for good.
            if isinstance(jwk, dict) and jwk.get("kty") not in (None, "oct") and jwk.get("use", "sig") == "sig":
                kid = jwk.get("kid")
                keys[kid if isinstance(kid, str) else None] = jwk
        return keys

    async def _discover(self) -> str:
        document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise IdentityProviderUnavailable("the discovery document names another issuer than oidc_issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderUnavailable("the discovery document has no jwks_uri")
        require_safe_url(jwks_uri, "the discovered jwks_uri")
        self.jwks_url = jwks_uri
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=5.0, follow_redirects=False)
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("fetching %s failed: %s", url, type(exc).__name__)
            raise IdentityProviderUnavailable(f"the identity provider could not be reached at {url}") from exc
        if not isinstance(document, dict):
            raise IdentityProviderUnavailable(f"{url} did not return a JSON object")
        return document

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
