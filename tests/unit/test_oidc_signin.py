"""The checks of the UI's OIDC sign-in (services/auth/oidc_signin.py) that a provider which
behaves never exercises: a real issuer on 127.0.0.1 (discovery + JWKS) and ID tokens it signs."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.errors import InvalidInput, Unauthenticated
from flowdeck.services.auth.jwks import IdentityProviderUnavailable
from flowdeck.services.auth.oidc import OidcVerifier
from flowdeck.services.auth.oidc_signin import OidcSignIn, Pending, challenge
from tests.support.auth import Issuer, SigningKey, running_issuer

CLIENT = "flowdeck-ui"
CALLBACK = "http://127.0.0.1:9/ui/oidc/callback"


@pytest.fixture
async def flow(tmp_path: Path) -> AsyncIterator[tuple[OidcSignIn, Issuer, SigningKey]]:
    key = SigningKey("key-1")
    with running_issuer() as issuer:
        issuer.keys.append(key)
        verifier = OidcVerifier(issuer.settings(tmp_path, oidc_ui_client_id=CLIENT))
        yield OidcSignIn(verifier), issuer, key
        await verifier.aclose()


def test_the_challenge_is_rfc_7636_s256() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636, appendix B
    assert challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_an_issuer_without_the_code_flow_endpoints_is_unavailable(
    flow: tuple[OidcSignIn, Issuer, SigningKey],
) -> None:
    sign_in, _, _ = flow
    with pytest.raises(IdentityProviderUnavailable, match="authorization or token endpoint"):
        await sign_in.start(CALLBACK, "/ui/")  # this issuer publishes discovery and JWKS only


def _pending() -> Pending:
    return Pending(state="st", nonce="no", verifier="v" * 43, next_page="/ui/")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"code": "c", "state": "other"}, "state"),
        ({"code": "c", "state": "\u00e9"}, "state"),
        ({"error": "access_denied", "state": "st"}, "access_denied"),
        ({"error": "<script>", "state": "st"}, "an unexpected error"),
        ({"code": "c", "state": "st", "iss": "http://evil.example"}, "another identity provider"),
    ],
)
async def test_an_answer_that_is_not_for_this_sign_in_is_refused(
    flow: tuple[OidcSignIn, Issuer, SigningKey], params: dict[str, str], message: str
) -> None:
    sign_in, _, _ = flow
    with pytest.raises(Unauthenticated, match=message):
        await sign_in.finish(None, _pending(), CALLBACK, params)  # type: ignore[arg-type]


async def test_an_answer_without_a_code_is_refused(flow: tuple[OidcSignIn, Issuer, SigningKey]) -> None:
    sign_in, issuer, _ = flow
    with pytest.raises(InvalidInput, match="no authorization code"):
        await sign_in.finish(None, _pending(), CALLBACK, {"state": "st", "iss": issuer.url})  # type: ignore[arg-type]


def _id_token(issuer: Issuer, key: SigningKey, **overrides: Any) -> str:
    return key.sign(issuer.claims(**({"aud": CLIENT, "nonce": "no"} | overrides)))


async def test_a_good_id_token_verifies(flow: tuple[OidcSignIn, Issuer, SigningKey]) -> None:
    sign_in, issuer, key = flow
    claims = await sign_in._verify_id_token(_id_token(issuer, key), "no")
    assert claims["preferred_username"] == "alice"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nonce": "replayed"}, "nonce"),
        ({"aud": "flowdeck-api"}, "did not verify"),  # a token for the API, not for the UI client
        ({"iss": "http://127.0.0.1:1"}, "did not verify"),
        ({"exp": 1000}, "did not verify"),
        ({"nonce": None}, "nonce"),
    ],
)
async def test_a_wrong_id_token_is_refused(
    flow: tuple[OidcSignIn, Issuer, SigningKey], overrides: dict[str, Any], message: str
) -> None:
    sign_in, issuer, key = flow
    with pytest.raises(Unauthenticated, match=message):
        await sign_in._verify_id_token(_id_token(issuer, key, **overrides), "no")


async def test_an_id_token_signed_by_another_key_or_unsigned_is_refused(
    flow: tuple[OidcSignIn, Issuer, SigningKey],
) -> None:
    sign_in, issuer, _ = flow
    with pytest.raises(Unauthenticated):
        await sign_in._verify_id_token(_id_token(issuer, SigningKey("key-1")), "no")
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"sub":"x"}').rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="algorithm"):
        await sign_in._verify_id_token(f"{header}.{body}.", "no")
    with pytest.raises(Unauthenticated, match="no ID token"):
        await sign_in._verify_id_token(None, "no")
