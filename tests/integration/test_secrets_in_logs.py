"""No password or API token ever reaches a log record or an error body, over
the HTTP layer, with every logger at DEBUG and no redaction filter installed
(so the test proves nothing logs them, not merely that they get masked)."""

from __future__ import annotations

import base64
import logging

import pytest

from flowdeck.settings import Settings
from tests.support.basic_app import PASSWORD, add_user, basic, basic_app, basic_settings, bearer

NEW_PASSWORD = "brand new passphrase 42"
WEAK = "weak7"


async def test_secrets_stay_out_of_logs_and_error_bodies(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "root", admin=True)
        await add_user(services, "alice", groups={"lab-a": "member"})
        bodies = []
        made = await http.post("/tokens", json={"name": "ci"}, headers=basic("alice"))
        token = made.json()["token"]
        calls = [
            ("GET", "/me", basic("alice")),
            ("GET", "/me", basic("alice", PASSWORD + "x")),
            ("GET", "/me", basic("nobody", PASSWORD)),
            ("GET", "/me", bearer(token)),
            ("GET", "/me", bearer(token[:-1] + ("A" if token[-1] != "A" else "B"))),
            ("GET", "/me", {"Authorization": f"Basic {base64.b64encode(PASSWORD.encode()).decode()}"}),
            ("GET", "/me", {"Authorization": f"Digest {PASSWORD}"}),
            ("GET", "/me", {"Authorization": f"Bearer {PASSWORD}"}),
        ]
        for method, path, headers in calls:
            bodies.append((await http.request(method, path, headers=headers)).text)
        for body in (
            {"username": "bob", "password": WEAK},
            {"username": "bad name\u200b", "password": PASSWORD},
            {"username": "bob", "password": PASSWORD, "unexpected": PASSWORD},
        ):
            bodies.append((await http.post("/users", json=body, headers=basic("root"))).text)
        change = {"password": NEW_PASSWORD, "current_password": PASSWORD + "x"}
        bodies.append((await http.put("/users/alice/password", json=change, headers=basic("alice"))).text)
        change["current_password"] = PASSWORD
        assert (await http.put("/users/alice/password", json=change, headers=basic("alice"))).status_code == 204
        bodies.append((await http.put("/users/alice/password", json={"password": WEAK}, headers=basic("root"))).text)
        revoked = await http.delete(f"/tokens/{made.json()['id']}", headers=basic("alice", NEW_PASSWORD))
        assert revoked.status_code == 200
        assert token not in revoked.text
        refused = await http.get("/me", headers=bearer(token))
        assert refused.status_code == 401
        bodies.append(refused.text)
        bodies.append((await http.get("/tokens", headers=basic("alice", NEW_PASSWORD))).text)

    logged = caplog.text + "".join(str(r.args) + str(r.__dict__) for r in caplog.records)
    assert caplog.records, "expected some log records to search"
    for secret in (PASSWORD, NEW_PASSWORD, WEAK, token, token.split("_", 2)[2]):
        assert secret not in logged, f"a secret was logged: {secret[:4]}…"
        for body in bodies:
            assert secret not in body, f"a secret was echoed: {body}"
