"""OIDC sign-in in the browser: the authorization-code flow with PKCE against the configured
issuer (RFC 6749, RFC 7636, OpenID Connect Core; docs/adr/0025).

:meth:`OidcSignIn.start` makes the issuer's authorization URL and the values the browser must
bring back (state, nonce, the PKCE verifier), which the UI keeps in a short-lived signed cookie.
:meth:`OidcSignIn.finish` checks the state, trades the code and the verifier for tokens at the
token endpoint, verifies the ID token (signature from the issuer's JWKS under an accepted
asymmetric algorithm, issuer, audience = the UI's client id, expiry, nonce), adds the userinfo
claims when the ID token carries only ``sub`` (as conforming providers do in this flow), and
syncs the user and their groups exactly as an OIDC bearer token would
(:func:`~flowdeck.services.auth.oidc.sync_user`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from flowdeck.db.engine import Database
from flowdeck.domain.principal import Principal
from flowdeck.errors import ConfigurationError, InvalidInput, Unauthenticated
from flowdeck.services.auth.jwks import IdentityProviderUnavailable, require_safe_url
from flowdeck.services.auth.oidc import LEEWAY_SECONDS, OidcVerifier, sync_user

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_ENDPOINTS = ("authorization_endpoint", "token_endpoint")


@dataclass(frozen=True)
class Pending:
    """A sign-in the browser started: what it must bring back, and where to go afterwards."""

    state: str
    nonce: str
    verifier: str
    next_page: str


def challenge(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OidcSignIn:
    """The UI's side of the authorization-code flow, for one configured issuer and client."""

    def __init__(self, verifier: OidcVerifier, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        settings = verifier.settings
        if not settings.oidc_ui_client_id:
            raise ConfigurationError("OIDC sign-in in the browser needs oidc_ui_client_id")
        self.verifier = verifier
        self.issuer = (settings.oidc_issuer or "").rstrip("/")
        self.client_id = settings.oidc_ui_client_id
        secret = settings.oidc_ui_client_secret
        self.client_secret = secret.get_secret_value() if secret else None
        self.scopes = settings.oidc_ui_scopes
        self._transport = transport
        self._endpoints: dict[str, str] = {}

    async def start(self, redirect_uri: str, next_page: str) -> tuple[str, Pending]:
        """The issuer's authorization URL to send the browser to, and what to keep until it returns."""
        endpoints = await self._discover()
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_page)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        return f"{endpoints['authorization_endpoint']}?{urllib.parse.urlencode(query)}", pending

    async def finish(self, db: Database, pending: Pending, redirect_uri: str, params: Mapping[str, str]) -> Principal:
        """The user the issuer signed in, after every check of the module docstring."""
        code = _code(pending, params, self.issuer)
        answer = await self._token(code, pending.verifier, redirect_uri)
        claims = await self._verify_id_token(answer.get("id_token"), pending.nonce)
        if self.verifier.settings.oidc_username_claim not in claims:
            claims = {**await self._userinfo(answer.get("access_token"), str(claims["sub"])), **claims}
        identity = self.verifier.identity(claims)
        user, groups = await sync_user(db, identity)
        return Principal(name=user.username, groups=dict(groups), is_admin=user.is_admin, via="oidc")

    async def _discover(self) -> dict[str, str]:
        if not self._endpoints:
            document = await self._call("GET", f"{self.issuer}/.well-known/openid-configuration")
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise IdentityProviderUnavailable("the discovery document names another issuer than oidc_issuer")
            found = {name: document.get(name) for name in (*_ENDPOINTS, "userinfo_endpoint")}
            for name, url in found.items():
                if isinstance(url, str):
                    require_safe_url(url, f"the discovered {name}")
            if not all(isinstance(found[name], str) for name in _ENDPOINTS):
                raise IdentityProviderUnavailable("the discovery document lacks the authorization or token endpoint")
            self._endpoints = {name: url for name, url in found.items() if isinstance(url, str)}
        return self._endpoints

    async def _token(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth = None
        if self.client_secret is None:
            form["client_id"] = self.client_id
        else:
            auth = (self.client_id, self.client_secret)
        endpoints = await self._discover()
        return await self._call("POST", endpoints["token_endpoint"], data=form, auth=auth)

    async def _verify_id_token(self, token: object, nonce: str) -> dict[str, Any]:
        if not isinstance(token, str):
            raise Unauthenticated("the identity provider sent no ID token")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the identity provider's ID token is malformed") from exc
        if alg not in self.verifier.algorithms:
            raise Unauthenticated("the ID token's algorithm is not accepted")
        key = await self.verifier.jwks.key_for(jwt.get_unverified_header(token).get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self.verifier.settings.oidc_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the identity provider's ID token did not verify") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise Unauthenticated("the ID token was not made for this sign-in (nonce): start again")
        return claims

    async def _userinfo(self, access_token: object, subject: str) -> dict[str, Any]:
        url = (await self._discover()).get("userinfo_endpoint")
        if url is None or not isinstance(access_token, str):
            return {}
        claims = await self._call("GET", url, headers={"Authorization": f"Bearer {access_token}"})
        if claims.get("sub") != subject:  # OpenID Connect Core 5.3.2: never mix two users' claims
            raise Unauthenticated("the identity provider's userinfo names another user than the ID token")
        return claims

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=10.0, follow_redirects=False) as client:
                response = await client.request(
                    method, url, headers={"Accept": "application/json"} | kwargs.pop("headers", {}), **kwargs
                )
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdentityProviderUnavailable(f"the identity provider could not be reached at {url}") from exc
        if response.status_code >= 400:
            error = document.get("error") if isinstance(document, dict) else None
            raise Unauthenticated(f"the identity provider refused: {_safe_code(error)}")
        if not isinstance(document, dict):
            raise IdentityProviderUnavailable(f"{url} did not return a JSON object")
        return document


def _code(pending: Pending, params: Mapping[str, str], issuer: str) -> str:
    """The authorization code the browser brought back, once it is shown to answer this sign-in."""
    if "error" in params:
        raise Unauthenticated(f"the identity provider did not sign you in: {_safe_code(params['error'])}")
    if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
        raise Unauthenticated("this answer is not for the sign-in this browser started (state): start again")
    if "iss" in params and params["iss"].rstrip("/") != issuer:  # RFC 9207: a mix-up with another issuer
        raise Unauthenticated("the answer came from another identity provider than the configured issuer")
    code = params.get("code", "")
    if not code or len(code) > 2048:
        raise InvalidInput("the identity provider's answer has no authorization code")
    return code


def _safe_code(error: object) -> str:
    """An OAuth error code fit to show; anything else is not quoted back."""
    return error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "an unexpected error"
