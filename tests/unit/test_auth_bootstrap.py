"""Start-up rules (first admin, no open service on a public address) and the instructions page."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.errors import ConfigurationError, Conflict, InvalidInput
from flowdeck.services.auth import bootstrap, instructions, users
from flowdeck.services.auth.authenticate import Authenticator
from flowdeck.settings import Settings
from tests.support.auth import basic, cheap_passwords, migrated_db, sqlite_settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_open_mode_may_bind_loopback(host: str) -> None:
    bootstrap.check_bind_allowed(Settings(auth_mode="none"), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_open_mode_refuses_public_addresses(host: str) -> None:
    with pytest.raises(ConfigurationError, match="refusing to start") as caught:
        bootstrap.check_bind_allowed(Settings(auth_mode="none"), host)
    assert "FLOWDECK_ALLOW_OPEN_ON_PUBLIC_ADDRESS" in caught.value.detail
    bootstrap.check_bind_allowed(Settings(auth_mode="none", allow_open_on_public_address=True), host)
    bootstrap.check_bind_allowed(Settings(auth_mode="basic"), host)


def test_the_settings_host_is_the_default() -> None:
    with pytest.raises(ConfigurationError):
        bootstrap.check_bind_allowed(Settings(auth_mode="none", host="0.0.0.0"))
    bootstrap.check_bind_allowed(Settings(auth_mode="none"))  # 127.0.0.1 by default


async def test_first_admin_is_created_once_and_can_sign_in(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, auth_mode="basic")
    db = migrated_db(settings)
    passwords = cheap_passwords()
    admin = await bootstrap.create_first_admin(db, "Admin", "first-admin-pw", passwords=passwords)
    assert admin is not None
    assert admin.username == "admin"
    assert admin.is_admin
    assert await bootstrap.create_first_admin(db, "other", "other-admin-pw", passwords=passwords) is None
    principal = await Authenticator(settings, db, passwords=passwords).authenticate(basic("admin", "first-admin-pw"))
    assert principal.is_admin
    with pytest.raises(Conflict):
        await users.create_user(db, "ADMIN", "another-password", passwords=passwords)
    with pytest.raises(InvalidInput, match="8 to"):
        await users.create_user(db, "shorty", "short", passwords=passwords)
    await db.dispose()


@pytest.mark.parametrize("mode", ["none", "basic", "oidc"])
def test_instructions_for_each_mode(mode: str) -> None:
    settings = Settings(auth_mode=mode, oidc_issuer="https://idp.example.org/realms/lab", oidc_audience="flowdeck")
    markdown = instructions.render_markdown(settings, "https://flowdeck.example.org/")
    page = instructions.render_html(settings, "https://flowdeck.example.org/")
    assert markdown.startswith("# Authenticating to flowdeck")
    assert "curl" in markdown
    assert "https://flowdeck.example.org/ga4gh/wes/v1/runs" in markdown
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    expected = {"none": "without authentication", "basic": "curl -u", "oidc": "https://idp.example.org/realms/lab"}[
        mode
    ]
    assert expected in markdown
    assert ("fd_" in markdown) == (mode != "none")


def test_instructions_escape_html() -> None:
    page = instructions.render_html(Settings(service_name="<b>lab</b>"))
    assert "<b>lab</b>" not in page
    assert "&lt;b&gt;" in page
