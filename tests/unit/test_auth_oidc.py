"""OIDC bearer tokens against a real issuer served on 127.0.0.1 (discovery + JWKS)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.errors import ConfigurationError, InvalidInput, Unauthenticated
from flowdeck.services.auth import users
from flowdeck.services.auth.authenticate import Authenticator
from flowdeck.services.auth.oidc import IdentityProviderUnavailable, JwksCache, OidcVerifier
from tests.support.auth import Issuer, SigningKey, b64url, cheap_passwords, migrated_db, running_issuer


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture
def issuer(rsa_key: SigningKey) -> Iterator[Issuer]:
    with running_issuer() as server:
        server.keys.append(rsa_key)
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def auth(issuer: Issuer, tmp_path: Path, clock: Clock) -> AsyncIterator[Authenticator]:
    settings = issuer.settings(tmp_path)
    db = migrated_db(settings)
    verifier = OidcVerifier(settings, jwks=JwksCache(settings, clock=clock))
    authenticator = Authenticator(settings, db, oidc=verifier, passwords=cheap_passwords())
    yield authenticator
    await authenticator.aclose()
    await db.dispose()


async def test_a_valid_token_signs_in_and_syncs_groups(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey
) -> None:
    groups = ["lab-a", "/Lab-B", "not a group!", "flowdeck-admins"]
    token = rsa_key.sign(issuer.claims(groups=groups, name="Alice A."))
    principal = await auth.authenticate(f"Bearer {token}")
    assert principal.name == "alice"
    assert principal.via == "oidc"
    assert principal.groups == {"lab-a": "member", "lab-b": "member"}
    assert principal.is_admin
    async with auth.db.read() as conn:
        user = await accounts.require_user(conn, "alice")
    assert user.source == "oidc"
    assert user.display_name == "Alice A."
    assert user.password_hash is None

    fewer = rsa_key.sign(issuer.claims(groups=["lab-b"]))
    again = await auth.authenticate(f"Bearer {fewer}")
    assert again.groups == {"lab-b": "member"}
    assert not again.is_admin
    assert issuer.jwks_fetches == 1  # keys are cached


async def test_group_admin_roles_granted_locally_survive_sync(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey
) -> None:
    await auth.authenticate("Bearer " + rsa_key.sign(issuer.claims()))
    await users.add_member(auth.db, "alice", "lab-a", "admin")
    principal = await auth.authenticate("Bearer " + rsa_key.sign(issuer.claims()))
    assert principal.groups == {"lab-a": "admin"}


async def test_leeway_accepts_a_token_just_past_expiry(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey
) -> None:
    token = rsa_key.sign(issuer.claims(exp=int(time.time()) - 10))
    assert (await auth.authenticate(f"Bearer {token}")).name == "alice"


def _hs256_with_public_key(issuer: Issuer, key: SigningKey) -> str:
    """The classic confusion: an HMAC 'signature' keyed with the issuer's public key."""
    from cryptography.hazmat.primitives import serialization

    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64url(json.dumps(issuer.claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def _unsigned(issuer: Issuer, kid: str) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(issuer.claims()).encode())}."


_IMPOSTORS: dict[str, SigningKey] = {}


def _bad_token(issuer: Issuer, key: SigningKey, case: str) -> tuple[str, str]:
    """The token for one failure case, and a fragment of the message it must get."""
    now = int(time.time())
    cases: dict[str, Callable[[], tuple[str, str]]] = {
        "bad signature": lambda: (_impostor(key).sign(issuer.claims()), "signature is invalid"),
        "tampered payload": lambda: (_tamper(key.sign(issuer.claims())), "signature is invalid"),
        "wrong issuer": lambda: (key.sign(issuer.claims(iss="https://evil.example")), "issuer"),
        "wrong audience": lambda: (key.sign(issuer.claims(aud="another-app")), "audience"),
        "no audience": lambda: (key.sign(issuer.claims(aud=None)), "'aud' claim"),
        "expired": lambda: (key.sign(issuer.claims(exp=now - 120)), "expired"),
        "no expiry": lambda: (key.sign(issuer.claims(exp=None)), "'exp' claim"),
        "not yet valid": lambda: (key.sign(issuer.claims(nbf=now + 600)), "not valid yet"),
        "alg none": lambda: (_unsigned(issuer, key.kid), "algorithm is not accepted"),
        "HS256 with the public key": lambda: (_hs256_with_public_key(issuer, key), "algorithm is not accepted"),
        "not a JWT": lambda: ("abc.def", "neither a JWT"),
        "bad username": lambda: (key.sign(issuer.claims(preferred_username="\u0430lice")), "not a usable username"),
        "no username": lambda: (key.sign(issuer.claims(preferred_username=None)), "not a usable username"),
    }
    return cases[case]()


def _impostor(key: SigningKey) -> SigningKey:
    """Another private key publishing under the same kid."""
    if key.kid not in _IMPOSTORS:
        _IMPOSTORS[key.kid] = SigningKey(key.kid)
    return _IMPOSTORS[key.kid]


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["preferred_username"] = "root"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize(
    "case",
    [
        "bad signature",
        "tampered payload",
        "wrong issuer",
        "wrong audience",
        "no audience",
        "expired",
        "no expiry",
        "not yet valid",
        "alg none",
        "HS256 with the public key",
        "not a JWT",
        "bad username",
        "no username",
    ],
)
async def test_bad_tokens_are_refused(auth: Authenticator, issuer: Issuer, rsa_key: SigningKey, case: str) -> None:
    token, fragment = _bad_token(issuer, rsa_key, case)
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(f"Bearer {token}")
    assert fragment in caught.value.detail
    assert token not in caught.value.detail
    async with auth.db.read() as conn:
        assert await accounts.list_users(conn) == []  # nothing stored on failure


async def test_unknown_kid_refreshes_once_then_401_without_hammering(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey, clock: Clock
) -> None:
    await auth.authenticate("Bearer " + rsa_key.sign(issuer.claims()))
    assert issuer.jwks_fetches == 1
    stranger = SigningKey("key-unknown")
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="unknown kid"):
            await auth.authenticate("Bearer " + stranger.sign(issuer.claims()))
    assert issuer.jwks_fetches == 2  # one refresh for the first unknown kid, none for the flood

    # The issuer rotates in a new key; once the interval has passed, it is picked up.
    rotated = SigningKey("key-2")
    issuer.keys.append(rotated)
    with pytest.raises(Unauthenticated, match="unknown kid"):
        await auth.authenticate("Bearer " + rotated.sign(issuer.claims()))
    clock.now += 61
    assert (await auth.authenticate("Bearer " + rotated.sign(issuer.claims()))).name == "alice"
    assert issuer.jwks_fetches == 3


async def test_ec_keys_and_kidless_tokens(issuer: Issuer, tmp_path: Path) -> None:
    ec_key = SigningKey("ec-1", alg="ES256")
    issuer.keys[:] = [ec_key]
    settings = issuer.settings(tmp_path)
    verifier = OidcVerifier(settings)
    try:
        kidless = jwt.encode(issuer.claims(), ec_key.private, algorithm="ES256")
        assert (await verifier.verify(kidless)).username == "alice"
        # An RS256 header naming the EC key must not verify.
        with pytest.raises(Unauthenticated, match="does not match"):
            await verifier.jwks.key_for("ec-1", "RS256")
    finally:
        await verifier.aclose()


async def test_symmetric_keys_in_the_jwks_are_ignored(issuer: Issuer, tmp_path: Path) -> None:
    issuer.extra_jwks.append({"kty": "oct", "kid": "shared", "k": b64url(b"s3cret-key-material")})
    verifier = OidcVerifier(issuer.settings(tmp_path, oidc_algorithms=["RS256"]))
    try:
        await verifier.jwks.key_for("key-1", "RS256")  # loads the set
        with pytest.raises(Unauthenticated, match="unknown kid"):
            await verifier.jwks.key_for("shared", "RS256")
    finally:
        await verifier.aclose()


async def test_explicit_jwks_url_skips_discovery(issuer: Issuer, rsa_key: SigningKey, tmp_path: Path) -> None:
    verifier = OidcVerifier(issuer.settings(tmp_path, oidc_jwks_url=f"{issuer.url}/jwks"))
    try:
        assert (await verifier.verify(rsa_key.sign(issuer.claims()))).groups == frozenset({"lab-a"})
        assert issuer.hits.get("/.well-known/openid-configuration", 0) == 0
    finally:
        await verifier.aclose()


async def test_unreachable_issuer_is_503_and_not_retried_in_a_loop(tmp_path: Path, rsa_key: SigningKey) -> None:
    with running_issuer() as gone:
        settings = gone.settings(tmp_path)
    verifier = OidcVerifier(settings)  # the server has stopped: connection refused
    try:
        token = rsa_key.sign({"iss": gone.url})
        with pytest.raises(IdentityProviderUnavailable) as caught:
            await verifier.verify(token)
        assert caught.value.status_code == 503
        with pytest.raises(IdentityProviderUnavailable, match="retry later"):
            await verifier.verify(token)
        assert verifier.jwks.fetches == 1
    finally:
        await verifier.aclose()


async def test_a_local_account_cannot_be_taken_over_by_a_token(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey
) -> None:
    await users.create_user(auth.db, "alice", "local-password", passwords=cheap_passwords())
    with pytest.raises(Unauthenticated, match="local account"):
        await auth.authenticate("Bearer " + rsa_key.sign(issuer.claims()))


async def test_api_tokens_work_in_oidc_mode_and_basic_does_not(
    auth: Authenticator, issuer: Issuer, rsa_key: SigningKey
) -> None:
    principal = await auth.authenticate("Bearer " + rsa_key.sign(issuer.claims()))
    secret, _ = await users.issue_token(auth.db, principal, "cli")
    assert (await auth.authenticate(f"Bearer {secret}")).via == "token"
    with pytest.raises(Unauthenticated, match="does not accept Basic"):
        await auth.authenticate("Basic YWxpY2U6cGFzc3dvcmQ=")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"oidc_issuer": None}, "needs oidc_issuer"),
        ({"oidc_audience": None}, "needs oidc_audience"),
        ({"oidc_algorithms": ["RS256", "HS256"]}, "refused: HS256"),
        ({"oidc_algorithms": ["none"]}, "refused: none"),
        ({"oidc_issuer": "http://idp.example.org"}, "https://"),
    ],
)
def test_unsafe_configuration_is_refused_at_start(tmp_path: Path, overrides: dict[str, Any], fragment: str) -> None:
    issuer = Issuer()  # not started: only its URL is used
    try:
        settings = issuer.settings(tmp_path).model_copy(update=overrides)
        with pytest.raises(ConfigurationError, match=fragment):
            Authenticator(settings, Database(settings))
    finally:
        issuer.server.server_close()


def test_dotted_group_claims(issuer: Issuer, tmp_path: Path) -> None:
    verifier = OidcVerifier(issuer.settings(tmp_path, oidc_groups_claim="realm_access.roles"))
    identity = verifier.identity({"sub": "x", "preferred_username": "bob", "realm_access": {"roles": ["lab-z"]}})
    assert identity.groups == frozenset({"lab-z"})
    assert identity.is_admin is False


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
JWT_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "HS256", "none", "PS256", "RS512"]) | JSONISH},
    optional={"kid": st.sampled_from(["key-1", "nope"]) | JSONISH, "typ": JSONISH, "crit": JSONISH},
)
CLAIMS = st.dictionaries(
    st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "preferred_username", "groups", "name"]), JSONISH
)


def test_arbitrary_jwts_give_only_401_or_400(issuer: Issuer, tmp_path: Path) -> None:
    """Made-up headers, claims and signatures never raise anything but Unauthenticated or InvalidInput."""
    loop = asyncio.new_event_loop()
    settings = issuer.settings(tmp_path)
    db = migrated_db(settings)
    auth = Authenticator(settings, db, passwords=cheap_passwords())

    @given(header=JWT_HEADERS, claims=CLAIMS, signature=st.binary(max_size=64))
    @hyp_settings(max_examples=200, deadline=None)
    def check(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> None:
        parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)]
        refused: Exception | None = None
        try:
            loop.run_until_complete(auth.authenticate("Bearer " + ".".join(parts)))
        except (Unauthenticated, InvalidInput) as exc:
            refused = exc
        assert refused is not None

    try:
        check()
        assert issuer.jwks_fetches <= 2  # the first load, then at most one unknown-kid refresh
    finally:
        loop.run_until_complete(auth.aclose())
        loop.run_until_complete(db.dispose())
        loop.close()
