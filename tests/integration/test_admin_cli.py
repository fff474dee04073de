"""``flowdeck users|groups|tokens`` against a real (SQLite) database, then the
accounts they made, signing in through the HTTP API."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from flowdeck.cli.main import main
from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.settings import Settings
from tests.support.basic_app import basic, basic_app, bearer


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("FLOWDECK_DATA_DIR", str(folder))
    monkeypatch.delenv("FLOWDECK_DATABASE_URL", raising=False)
    return folder


def cli(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_accounts_made_by_the_cli_sign_in(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_password = "a long enough password"
    assert cli(monkeypatch, "users", "create", "Root", "--admin", "--password-stdin", stdin=secret_password + "\n") == 0
    assert cli(monkeypatch, "users", "create", "alice", "--password-stdin", stdin=secret_password + "\n") == 0
    assert cli(monkeypatch, "users", "create", "robot", "--token-only") == 0
    assert cli(monkeypatch, "groups", "create", "Lab-A") == 0
    assert cli(monkeypatch, "groups", "add-member", "lab-a", "alice", "--role", "admin") == 0
    assert cli(monkeypatch, "groups", "add-member", "lab-a", "robot") == 0
    capsys.readouterr()
    assert cli(monkeypatch, "tokens", "create", "robot", "--name", "ci") == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("fd_")
    assert token not in out.err
    assert cli(monkeypatch, "users", "list") == 0
    listing = capsys.readouterr().out
    assert "root" in listing
    assert "lab-a(admin)" in listing
    assert secret_password not in listing
    # no password on the command line, and none on a non-terminal stdin
    assert cli(monkeypatch, "users", "create", "bob") == 2
    assert "--password-stdin" in capsys.readouterr().err
    assert cli(monkeypatch, "users", "passwd", "alice", "--password-stdin", stdin="another good password\n") == 0

    settings = Settings(data_dir=data_dir, auth_mode="basic")

    async def sign_in() -> str:
        async with basic_app(settings) as (_, _services, http):
            assert (await http.get("/me", headers=basic("root", secret_password))).json()["is_admin"] is True
            assert (await http.get("/me", headers=basic("alice", secret_password))).status_code == 401
            me = await http.get("/me", headers=basic("alice", "another good password"))
            assert me.json()["groups"] == [{"name": "lab-a", "role": "admin"}]
            assert (await http.get("/me", headers=bearer(token))).json()["name"] == "robot"
        db = Database(settings)
        async with db.read() as conn:
            robot = await accounts.require_user(conn, "robot")
            token_id = (await accounts.list_tokens(conn, robot.id))[0].id
        await db.dispose()
        return token_id

    token_id = asyncio.run(sign_in())
    assert cli(monkeypatch, "tokens", "revoke", token_id) == 0
    assert cli(monkeypatch, "tokens", "revoke", "no-such-token") == 2

    async def refused() -> int:
        async with basic_app(settings) as (_, _services, http):
            return (await http.get("/me", headers=bearer(token))).status_code

    assert asyncio.run(refused()) == 401
