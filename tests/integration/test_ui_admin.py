"""The accounts page (docs/ui.md#accounts): tokens shown once and usable, revoked from the page;
group admins manage their own group's members only; service admins create users and groups; a plain
member can do none of it, through the page or by posting its forms by hand."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.integration.test_ui import csrf_of, sign_in
from tests.support.basic_app import add_user, basic, basic_app, basic_settings, bearer

Lab = tuple[AppContext, httpx.AsyncClient]


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[Lab]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "root", admin=True)
        await add_user(services, "alice", groups={"lab-a": "admin"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        await add_user(services, "carol", groups={"lab-a": "member"})
        yield services, http


async def _post(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await http.get("/ui/admin")
    return await http.post(path, data={"csrf": csrf_of(page.text), **fields})


async def test_a_token_is_shown_once_works_and_is_revoked_from_the_page(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "bob")
    made = await _post(http, "/ui/admin/tokens", name="laptop", days="30")
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-secret" readonly value="([^"]+)"', made.text)
    assert secret, made.text
    assert (await http.get("/ui/admin")).text.count(secret.group(1)) == 0  # never shown again
    assert (await http.get("/me", headers=bearer(secret.group(1)))).json()["name"] == "bob"
    token_id = (await http.get("/tokens", headers=basic("bob"))).json()["tokens"][0]["id"]
    revoked = await _post(http, f"/ui/admin/tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    assert (await http.get("/me", headers=bearer(secret.group(1)))).status_code == 401
    assert "revoked" in (await http.get("/ui/admin")).text
    bad = await _post(http, "/ui/admin/tokens", name="x", days="-3")
    assert bad.status_code == 400
    assert "whole number of days" in bad.text


async def test_a_group_admin_manages_their_group_only(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "alice")
    page = (await http.get("/ui/admin")).text
    assert "lab-a" in page
    assert "lab-b" not in page
    assert 'id="users"' not in page
    assert (await _post(http, "/ui/admin/groups/lab-a/members", username="bob", role="member")).status_code == 303
    members = (await http.get("/groups", headers=basic("alice"))).json()["groups"][0]["members"]
    assert {m["username"] for m in members} == {"alice", "bob", "carol"}
    assert (await _post(http, "/ui/admin/groups/lab-a/members/carol/remove")).status_code == 303
    assert "carol" not in (await http.get("/ui/admin")).text
    # Another group looks missing; creating users or groups is for service admins.
    assert (await _post(http, "/ui/admin/groups/lab-b/members", username="alice")).status_code == 404
    assert (await _post(http, "/ui/admin/users", username="eve", password="pw-eve-123456")).status_code == 403
    assert (await _post(http, "/ui/admin/groups", name="lab-c")).status_code == 403


async def test_a_plain_member_only_reads_and_forged_forms_change_nothing(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "carol")
    page = (await http.get("/ui/admin")).text
    assert "Add or change role" not in page
    assert "Remove" not in page
    assert (await _post(http, "/ui/admin/groups/lab-a/members", username="bob")).status_code == 403
    forged = await http.post("/ui/admin/groups/lab-a/members", data={"csrf": "forged", "username": "bob"})
    assert forged.status_code == 403
    members = (await http.get("/groups", headers=basic("alice"))).json()["groups"][0]["members"]
    assert "bob" not in {m["username"] for m in members}


async def test_a_service_admin_creates_users_and_groups(lab: Lab) -> None:
    _, http = lab
    await sign_in(http, "root")
    assert "bob" in (await http.get("/ui/admin")).text  # every user is listed
    made = await _post(http, "/ui/admin/users", username="dave", password="pw-dave-123456", display_name="Dave")
    assert made.status_code == 303
    assert (await _post(http, "/ui/admin/groups", name="lab-c", description="core")).status_code == 303
    assert (await _post(http, "/ui/admin/groups/lab-c/members", username="dave", role="admin")).status_code == 303
    assert (await http.get("/me", headers=basic("dave", "pw-dave-123456"))).json()["groups"] == [
        {"name": "lab-c", "role": "admin"}
    ]
    again = await _post(http, "/ui/admin/users", username="dave", password="pw-dave-123456")
    assert again.status_code == 409
    assert "dave" in again.text
