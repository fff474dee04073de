"""The Authenticator in modes none and basic: Basic credentials, API tokens, bad headers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.principal import LOCAL_USER, Principal
from flowdeck.errors import FlowdeckError, InvalidInput, Unauthenticated
from flowdeck.services.auth import users
from flowdeck.services.auth.authenticate import MAX_HEADER_LENGTH, Authenticator, challenge_headers
from flowdeck.settings import Settings
from tests.support.auth import basic, cheap_passwords, migrated_db, sqlite_settings

PASSWORD = "alice-secret-pw"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = migrated_db(sqlite_settings(tmp_path, auth_mode="basic"))
    passwords = cheap_passwords()
    await users.create_user(database, "alice", PASSWORD, passwords=passwords)
    await users.create_user(database, "root", "root-secret-pw", is_admin=True, passwords=passwords)
    await users.create_group(database, "lab-a")
    await users.create_group(database, "lab-b")
    await users.add_member(database, "alice", "lab-a", "admin")
    await users.add_member(database, "alice", "lab-b")
    yield database
    await database.dispose()


@pytest.fixture
def auth(db: Database, tmp_path: Path) -> Authenticator:
    return Authenticator(sqlite_settings(tmp_path, auth_mode="basic"), db, passwords=cheap_passwords())


async def test_mode_none_is_the_local_user_whatever_is_sent(tmp_path: Path) -> None:
    auth = Authenticator(Settings(data_dir=tmp_path), Database(Settings(data_dir=tmp_path)))
    for header in (None, "", "Basic !!!", "Bearer x", "garbage"):
        assert await auth.authenticate(header) is LOCAL_USER
    assert challenge_headers(Settings(data_dir=tmp_path)) == {}


async def test_basic_signs_in_with_groups_and_roles(auth: Authenticator) -> None:
    principal = await auth.authenticate(basic("alice", PASSWORD))
    assert principal == Principal(name="alice", groups={"lab-a": "admin", "lab-b": "member"}, via="basic")
    admin = await auth.authenticate(basic("root", "root-secret-pw"))
    assert admin.is_admin
    assert admin.sees_all


async def test_basic_scheme_is_case_insensitive_and_username_folds(auth: Authenticator) -> None:
    header = basic("ALICE", PASSWORD).replace("Basic", "bAsIc")
    assert (await auth.authenticate(header)).name == "alice"
    fullwidth = "\uff41\uff4c\uff49\uff43\uff45"  # "alice" in full-width letters: the same account
    assert (await auth.authenticate(basic(fullwidth, PASSWORD))).name == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong-password"), ("nobody", PASSWORD), ("alice", ""), ("alice", PASSWORD + " ")],
)
async def test_wrong_credentials_get_one_message(auth: Authenticator, username: str, password: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(basic(username, password))
    assert caught.value.detail == "invalid username or password"


@pytest.mark.parametrize("username", ["\u0430lice", "ali\u200dce", "alice\u202e", " alice", "al ice", "ali\x00ce"])
async def test_unicode_tricks_in_usernames_are_refused(auth: Authenticator, username: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(basic(username, PASSWORD))
    assert caught.value.detail.startswith("invalid username:")
    assert PASSWORD not in caught.value.detail


async def test_disabled_accounts_are_refused_after_the_password(auth: Authenticator, db: Database) -> None:
    async with db.write() as conn:
        user = await accounts.require_user(conn, "alice")
        await accounts.update_user(conn, user.id, disabled=True)
    with pytest.raises(Unauthenticated, match="disabled"):
        await auth.authenticate(basic("alice", PASSWORD))
    with pytest.raises(Unauthenticated, match="invalid username or password"):
        await auth.authenticate(basic("alice", "wrong-password"))


async def test_outdated_hash_is_upgraded_at_sign_in(db: Database, tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    from flowdeck.services.auth.passwords import Passwords

    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    auth = Authenticator(sqlite_settings(tmp_path, auth_mode="basic"), db, passwords=stronger)
    await auth.authenticate(basic("alice", PASSWORD))
    async with db.read() as conn:
        stored = (await accounts.require_user(conn, "alice")).password_hash
    assert stored is not None
    assert not stronger.hasher.check_needs_rehash(stored)
    assert (await auth.authenticate(basic("alice", PASSWORD))).name == "alice"


async def test_a_password_change_takes_effect_at_once(auth: Authenticator, db: Database) -> None:
    await auth.authenticate(basic("alice", PASSWORD))  # now remembered as verified
    await users.set_password(db, "alice", "a-brand-new-password", passwords=cheap_passwords())
    with pytest.raises(Unauthenticated):
        await auth.authenticate(basic("alice", PASSWORD))
    assert (await auth.authenticate(basic("alice", "a-brand-new-password"))).name == "alice"


# --------------------------------------------------------------- API tokens
async def _token(db: Database, principal: Principal, **kwargs: object) -> str:
    secret, _ = await users.issue_token(db, principal, "ci", **kwargs)  # type: ignore[arg-type]
    return secret


ALICE = Principal(name="alice", groups={"lab-a": "admin", "lab-b": "member"}, via="basic")


async def test_api_token_signs_in_and_is_touched(auth: Authenticator, db: Database) -> None:
    secret = await _token(db, ALICE)
    assert secret.startswith("fd_")
    principal = await auth.authenticate(f"Bearer {secret}")
    assert principal.name == "alice"
    assert principal.via == "token"
    assert principal.groups == ALICE.groups
    (listed,) = await users.list_tokens(db, ALICE)
    assert listed.last_used_at is not None
    assert secret not in repr(listed)
    assert listed.token_hash != secret


async def test_revoked_api_token(auth: Authenticator, db: Database) -> None:
    secret, record = await users.issue_token(db, ALICE, "ci")
    await users.revoke_token(db, ALICE, record.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.authenticate(f"Bearer {secret}")


async def test_expired_api_token(auth: Authenticator, db: Database) -> None:
    secret, _ = await users.issue_token(db, ALICE, "ci", expires_at=datetime.now(UTC) + timedelta(hours=1))
    async with db.write() as conn:  # let an hour pass
        await conn.execute(accounts.api_tokens.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with pytest.raises(Unauthenticated, match="expired"):
        await auth.authenticate(f"Bearer {secret}")
    with pytest.raises(InvalidInput, match="future"):
        await users.issue_token(db, ALICE, "ci", expires_at=datetime.now(UTC) - timedelta(days=1))


async def test_unknown_and_malformed_api_tokens(auth: Authenticator, db: Database) -> None:
    secret = await _token(db, ALICE)
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    with pytest.raises(Unauthenticated, match="invalid API token"):
        await auth.authenticate(f"Bearer {tampered}")
    for bad in ("fd_short", "fd_0123abcd_tooshort", "fd_XYZ", secret + "x"):
        with pytest.raises(Unauthenticated, match="malformed API token") as caught:
            await auth.authenticate(f"Bearer {bad}")
        assert secret not in caught.value.detail


async def test_other_users_tokens_look_missing(db: Database) -> None:
    _, record = await users.issue_token(db, ALICE, "ci")
    mallory = Principal(name="mallory", groups={"lab-a": "member"})
    with pytest.raises(FlowdeckError) as caught:
        await users.revoke_token(db, mallory, record.id)
    assert caught.value.status_code == 404
    with pytest.raises(FlowdeckError) as listing:
        await users.list_tokens(db, mallory, "alice")
    assert listing.value.status_code == 404
    root = Principal(name="root", is_admin=True)
    assert (await users.revoke_token(db, root, record.id)).revoked_at is not None


async def test_jwt_in_basic_mode_is_refused_clearly(auth: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match="does not use OIDC"):
        await auth.authenticate("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")


# ------------------------------------------------------------ bad headers
@pytest.mark.parametrize(
    ("header", "error", "fragment"),
    [
        (None, Unauthenticated, "authentication required"),
        ("", Unauthenticated, "authentication required"),
        ("Digest username=alice", Unauthenticated, "unsupported authorization scheme"),
        ("Token abc", Unauthenticated, "unsupported authorization scheme"),
        ("Basic", InvalidInput, "no credentials"),
        ("Bearer   ", InvalidInput, "no credentials"),
        ("Basic a b", InvalidInput, "single base64"),
        ("Basic !!!!", InvalidInput, "single base64"),
        ("Basic abc", InvalidInput, "base64"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), InvalidInput, "username:password"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), InvalidInput, "UTF-8"),
        ("Basic\tYWxpY2U6eA==", InvalidInput, "printable ASCII"),
        ("Bearer fd_\u00e9", InvalidInput, "printable ASCII"),
        ("Bearer " + "A" * MAX_HEADER_LENGTH, InvalidInput, "too long"),
    ],
)
async def test_malformed_headers(
    auth: Authenticator, header: str | None, error: type[FlowdeckError], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        await auth.authenticate(header)
    assert type(caught.value) is error
    assert fragment in caught.value.detail
    assert len(caught.value.detail) < 300


def test_challenge_headers(tmp_path: Path) -> None:
    value = challenge_headers(sqlite_settings(tmp_path, auth_mode="basic", service_name='my "svc"'))["WWW-Authenticate"]
    assert value.startswith('Basic realm="my svc"')
    assert "Bearer" in value


HEADERS = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda s, c: f"{s} {c}",
        st.sampled_from(["Basic", "Bearer", "basic", "BEARER", "Negotiate"]),
        st.text(max_size=200),
    ),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=120)),
    st.builds(basic, st.text(max_size=40), st.text(max_size=40)),
    st.builds(lambda t: "Bearer fd_" + t, st.from_regex(r"[0-9a-f]{8}_[A-Za-z0-9_-]{43}", fullmatch=True)),
    st.builds(lambda t: "Bearer " + t, st.from_regex(r"[A-Za-z0-9._~+/-]{1,300}=*", fullmatch=True)),
)


def test_any_header_gives_only_401_or_400(tmp_path: Path) -> None:
    """Whatever arrives, the answer is Unauthenticated or InvalidInput, never another error."""
    loop = asyncio.new_event_loop()
    settings = sqlite_settings(tmp_path, auth_mode="basic")
    database = migrated_db(settings)
    loop.run_until_complete(users.create_user(database, "alice", PASSWORD, passwords=cheap_passwords()))
    auth = Authenticator(settings, database, passwords=cheap_passwords())

    @given(header=HEADERS)
    @hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(header: str) -> None:
        refused: FlowdeckError | None = None
        try:
            principal = loop.run_until_complete(auth.authenticate(header))
        except (Unauthenticated, InvalidInput) as exc:
            refused = exc
        if refused is None:
            assert principal.name == "alice"
        else:
            assert type(refused) in (Unauthenticated, InvalidInput)
            assert refused.detail

    try:
        check()
    finally:
        loop.run_until_complete(database.dispose())
        loop.close()
