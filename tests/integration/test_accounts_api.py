"""The account API over HTTP in auth mode ``basic``: /me, users, groups, members, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.support.basic_app import PASSWORD, add_user, basic, basic_app, basic_settings, bearer

ROOT = basic("root")
LEAD = basic("lead")
ALICE = basic("alice")
BOB = basic("bob")


@pytest.fixture
async def client(db_settings: Settings) -> AsyncIterator[tuple[AppContext, httpx.AsyncClient]]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "root", admin=True)
        await add_user(services, "lead", groups={"lab-a": "admin"})
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        yield services, http


async def test_me_says_who_is_asking(client: tuple[AppContext, httpx.AsyncClient]) -> None:
    _, http = client
    answer = await http.get("/me", headers=LEAD)
    assert answer.status_code == 200
    assert answer.json() == {
        "name": "lead",
        "groups": [{"name": "lab-a", "role": "admin"}],
        "is_admin": False,
        "via": "basic",
    }
    assert (await http.get("/me", headers=ROOT)).json()["is_admin"] is True
    anonymous = await http.get("/me")
    assert anonymous.status_code == 401
    assert "www-authenticate" in anonymous.headers


async def test_users_are_managed_by_service_admins(client: tuple[AppContext, httpx.AsyncClient]) -> None:
    _, http = client
    new = {"username": "Carol", "password": "another long one"}
    assert (await http.post("/users", json=new, headers=ALICE)).status_code == 403
    made = await http.post("/users", json=new, headers=ROOT)
    assert made.status_code == 201, made.text
    assert made.json()["username"] == "carol"
    assert "another long one" not in made.text
    assert "password_hash" not in made.text
    assert (await http.post("/users", json=new, headers=ROOT)).status_code == 409
    weak = await http.post("/users", json={"username": "dave", "password": "short"}, headers=ROOT)
    assert weak.status_code in (400, 422)
    assert "short" not in weak.json()["detail"]
    assert (await http.get("/me", headers=basic("carol", "another long one"))).status_code == 200
    listed = await http.get("/users", headers=ROOT)
    assert {u["username"] for u in listed.json()["users"]} == {"root", "lead", "alice", "bob", "carol"}
    assert (await http.get("/users", headers=LEAD)).status_code == 403
    assert (await http.get("/users/alice", headers=ALICE)).json()["groups"] == [{"name": "lab-a", "role": "member"}]
    missing, hidden = await http.get("/users/nobody", headers=ALICE), await http.get("/users/bob", headers=ALICE)
    assert missing.status_code == hidden.status_code == 404
    assert (await http.get("/users/bob", headers=ROOT)).status_code == 200


async def test_passwords_change_for_self_with_the_current_one(client: tuple[AppContext, httpx.AsyncClient]) -> None:
    _, http = client
    change = {"password": "a brand new secret"}
    assert (await http.put("/users/alice/password", json=change, headers=ALICE)).status_code == 403
    wrong = {**change, "current_password": "not it at all"}
    assert (await http.put("/users/alice/password", json=wrong, headers=ALICE)).status_code == 403
    assert (
        await http.put("/users/bob/password", json={**change, "current_password": PASSWORD}, headers=ALICE)
    ).status_code == 404
    done = await http.put("/users/alice/password", json={**change, "current_password": PASSWORD}, headers=ALICE)
    assert done.status_code == 204, done.text
    assert (await http.get("/me", headers=ALICE)).status_code == 401
    assert (await http.get("/me", headers=basic("alice", "a brand new secret"))).status_code == 200
    assert (await http.put("/users/bob/password", json=change, headers=ROOT)).status_code == 204
    assert (await http.get("/me", headers=basic("bob", "a brand new secret"))).status_code == 200


async def test_groups_and_members(client: tuple[AppContext, httpx.AsyncClient]) -> None:
    _, http = client
    assert (await http.post("/groups", json={"name": "lab-c"}, headers=LEAD)).status_code == 403
    assert (await http.post("/groups", json={"name": "Lab-C"}, headers=ROOT)).json()["name"] == "lab-c"
    assert [g["name"] for g in (await http.get("/groups", headers=ALICE)).json()["groups"]] == ["lab-a"]
    assert {g["name"] for g in (await http.get("/groups", headers=ROOT)).json()["groups"]} == {
        "lab-a",
        "lab-b",
        "lab-c",
    }
    # a group admin manages their own group; members may not; other groups look missing
    added = await http.post("/groups/lab-a/members", json={"username": "bob"}, headers=LEAD)
    assert added.status_code == 200, added.text
    assert (await http.post("/groups/lab-a/members", json={"username": "bob"}, headers=ALICE)).status_code == 403
    other, missing = (
        await http.post("/groups/lab-b/members", json={"username": "alice"}, headers=LEAD),
        await http.post("/groups/lab-z/members", json={"username": "alice"}, headers=LEAD),
    )
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"].replace("lab-b", "X") == missing.json()["detail"].replace("lab-z", "X")
    assert {g["name"] for g in (await http.get("/me", headers=BOB)).json()["groups"]} == {"lab-a", "lab-b"}
    assert (await http.delete("/groups/lab-a/members/bob", headers=LEAD)).status_code == 204
    assert (await http.delete("/groups/lab-a/members/bob", headers=LEAD)).status_code == 404
    assert (
        await http.post("/groups/lab-c/members", json={"username": "bob", "role": "admin"}, headers=ROOT)
    ).status_code == 200
    assert (await http.get("/me", headers=BOB)).json()["groups"][1] == {"name": "lab-c", "role": "admin"}


async def test_tokens_are_shown_once_and_can_be_revoked(client: tuple[AppContext, httpx.AsyncClient]) -> None:
    _, http = client
    made = await http.post("/tokens", json={"name": "ci"}, headers=ALICE)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    secret, token_id = made.json()["token"], made.json()["id"]
    assert (await http.get("/me", headers=bearer(secret))).json()["via"] == "token"
    listed = await http.get("/tokens", headers=ALICE)
    assert [t["id"] for t in listed.json()["tokens"]] == [token_id]
    assert secret not in listed.text
    # someone else's tokens look missing; an admin sees and revokes them
    assert (await http.get("/tokens", params={"username": "alice"}, headers=BOB)).status_code == 404
    assert (await http.delete(f"/tokens/{token_id}", headers=BOB)).status_code == 404
    assert (await http.post("/tokens", json={"name": "x", "username": "alice"}, headers=BOB)).status_code == 404
    assert len((await http.get("/tokens", params={"username": "alice"}, headers=ROOT)).json()["tokens"]) == 1
    revoked = await http.delete(f"/tokens/{token_id}", headers=ALICE)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await http.get("/me", headers=bearer(secret))
    assert refused.status_code == 401
    assert "www-authenticate" in refused.headers
    assert secret not in refused.text
    assert (await http.get("/tokens", headers=ALICE)).json()["tokens"][0]["active"] is False
    past = await http.post("/tokens", json={"name": "old", "expires_at": "2000-01-01T00:00:00Z"}, headers=ALICE)
    assert past.status_code == 400
