"""The accounts repository on real databases (SQLite, and PostgreSQL when marked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.errors import Conflict, InvalidInput, NotFound
from flowdeck.settings import Settings


@pytest.fixture
async def db(db_settings: Settings) -> AsyncIterator[Database]:
    database = Database(db_settings)
    yield database
    await database.dispose()


async def test_users_are_stored_under_their_canonical_name(db: Database) -> None:
    async with db.write() as conn:
        user = await accounts.create_user(conn, "Alice.Smith", password_hash="h", display_name="Alice Smith")
    async with db.read() as conn:
        again = await accounts.require_user(conn, "ALICE.SMITH")
    assert user.username == again.username == "alice.smith"
    assert again.display_name == "Alice Smith"
    assert again.source == "local"
    assert not again.is_admin
    assert not again.disabled
    assert again.created_at.tzinfo is not None


@pytest.mark.parametrize("twin", ["alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45"])  # full-width folds to alice
async def test_a_name_that_folds_onto_an_existing_one_conflicts(db: Database, twin: str) -> None:
    async with db.write() as conn:
        await accounts.create_user(conn, "alice")
    with pytest.raises(Conflict):
        async with db.write() as conn:
            await accounts.create_user(conn, twin)


async def test_memberships_roles_and_listing(db: Database) -> None:
    async with db.write() as conn:
        alice = await accounts.create_user(conn, "alice")
        bob = await accounts.create_user(conn, "bob")
        lab_a = await accounts.create_group(conn, "Lab-A", "first lab")
        lab_b = await accounts.ensure_group(conn, "lab-b")
        assert (await accounts.ensure_group(conn, "LAB-B")).id == lab_b.id
        await accounts.set_membership(conn, alice.id, lab_a.id, "member")
        await accounts.set_membership(conn, alice.id, lab_a.id, "admin")  # replaces the role
        await accounts.set_membership(conn, bob.id, lab_b.id, "member")
    async with db.read() as conn:
        assert await accounts.user_groups(conn, alice.id) == {"lab-a": "admin"}
        assert [m.username for m in await accounts.group_members(conn, lab_a.id)] == ["alice"]
        assert [u.username for u in await accounts.list_users(conn, in_groups=["lab-b"])] == ["bob"]
        assert [g.name for g in await accounts.list_groups(conn)] == ["lab-a", "lab-b"]
    with pytest.raises(InvalidInput):
        async with db.write() as conn:
            await accounts.set_membership(conn, alice.id, lab_b.id, "owner")
    async with db.write() as conn:
        assert await accounts.remove_membership(conn, alice.id, lab_a.id)
        assert not await accounts.remove_membership(conn, alice.id, lab_a.id)
        with pytest.raises(Conflict):
            await accounts.create_group(conn, "LAB-A")


async def test_tokens_lookup_touch_and_revoke(db: Database) -> None:
    expires = datetime.now(UTC) + timedelta(days=1)
    async with db.write() as conn:
        alice = await accounts.create_user(conn, "alice")
        token = await accounts.create_token(
            conn, alice.id, name="ci", prefix="0123abcd", token_hash="f" * 64, expires_at=expires
        )
    async with db.read() as conn:
        found = await accounts.find_token_by_hash(conn, "f" * 64)
        assert await accounts.find_token_by_hash(conn, "e" * 64) is None
    assert found is not None
    assert found[0].id == token.id
    assert found[1].username == "alice"
    assert found[0].expires_at == expires
    async with db.write() as conn:
        await accounts.touch_token(conn, token.id)
        assert await accounts.revoke_token(conn, token.id)
        assert not await accounts.revoke_token(conn, token.id)  # already revoked
    async with db.read() as conn:
        (listed,) = await accounts.list_tokens(conn, alice.id)
    assert listed.last_used_at is not None
    assert listed.revoked_at is not None


async def test_deleting_a_user_removes_memberships_and_tokens(db: Database) -> None:
    async with db.write() as conn:
        alice = await accounts.create_user(conn, "alice", is_admin=True)
        group = await accounts.create_group(conn, "lab-a")
        await accounts.set_membership(conn, alice.id, group.id, "member")
        await accounts.create_token(conn, alice.id, name="t", prefix="0123abcd", token_hash="a" * 64)
        assert await accounts.count_admins(conn) == 1
        assert await accounts.delete_user(conn, alice.id)
    async with db.read() as conn:
        assert await accounts.count_admins(conn) == 0
        assert await accounts.find_token_by_hash(conn, "a" * 64) is None
        assert await accounts.group_members(conn, group.id) == []
        with pytest.raises(NotFound):
            await accounts.require_user(conn, "alice")


@pytest.mark.parametrize(
    "name",
    [
        "",
        " alice",
        "alice ",
        "al ice",
        "\u0430lice",  # Cyrillic a
        "ali\u200dce",  # zero-width joiner
        "alice\u202e",  # right-to-left override
        "ali\x00ce",
        "ali\tce",
        "-alice",
        "a" * 129,
        "x" * 10_000,
        "caf\u00e9",  # accented letters stay non-ASCII
    ],
)
def test_usernames_refuse_tricks(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        accounts.normalize_username(name)
    assert name.strip() == "" or name[:50] not in caught.value.detail


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Alice", "alice"),
        ("\uff21lice", "alice"),
        ("\u212aelvin", "kelvin"),
        ("stra\u00dfe", "strasse"),
        ("a.b+c@x.org", "a.b+c@x.org"),
    ],
)
def test_usernames_fold_forms_of_the_same_letters(raw: str, canonical: str) -> None:
    assert accounts.normalize_username(raw) == canonical


def test_group_names() -> None:
    assert accounts.normalize_group_name("Cancer_Genomics_Lab") == "cancer_genomics_lab"
    for bad in ["lab a", "lab@x", "/lab", "l\u0430b", ""]:
        with pytest.raises(InvalidInput):
            accounts.normalize_group_name(bad)
