"""No password or token reaches a log record or an error message."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.errors import FlowdeckError
from flowdeck.services.auth import users
from flowdeck.services.auth.authenticate import Authenticator
from flowdeck.services.auth.redact import MASK, RedactingFilter, install_redaction, redact, uninstall_redaction
from tests.support.auth import basic, cheap_passwords, migrated_db, sqlite_settings

PASSWORD = "Tr0ub4dor&3-horse"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Basic YWxpY2U6c2VjcmV0", "YWxpY2U6c2VjcmV0"),
        ("headers={'authorization': 'Bearer abc.def.ghi'}", "abc.def.ghi"),
        ("got Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "eyJzdWIiOiJ4In0"),
        ("token fd_0123abcd_" + "Q" * 43 + " used", "Q" * 43),
        ("login password=hunter2222&user=bob", "hunter2222"),
        ('{"password": "hunter2222", "user": "bob"}', "hunter2222"),
        ("client_secret: s3cr3t-value", "s3cr3t-value"),
        ("postgresql://flowdeck:db-pass-123@db/flowdeck", "db-pass-123"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert MASK in masked


def test_redact_leaves_prose_and_token_prefixes() -> None:
    assert redact("basic authentication is enabled") == "basic authentication is enabled"
    assert "fd_0123abcd_" in redact("fd_0123abcd_" + "Q" * 43)


def test_filter_masks_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "header %s", ("Basic YWxpY2U6c2VjcmV0",), None)
    try:
        raise ValueError("password=hunter2222")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "YWxpY2U6c2VjcmV0" not in text
    assert "hunter2222" not in text


@pytest.fixture
def redaction() -> Iterator[None]:
    install_redaction()
    yield
    uninstall_redaction()


async def test_no_secret_is_logged_or_echoed_during_authentication(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, redaction: None
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, SQLAlchemy's statements and parameters included
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQLAlchemy's echo: every statement
    settings = sqlite_settings(tmp_path, auth_mode="basic")
    db = migrated_db(settings)
    passwords = cheap_passwords()
    alice = await users.create_user(db, "alice", PASSWORD, passwords=passwords)
    auth = Authenticator(settings, db, passwords=passwords)
    principal = await auth.authenticate(basic("alice", PASSWORD))
    secret, _ = await users.issue_token(db, principal, "ci")
    await auth.authenticate(f"Bearer {secret}")

    messages = []
    attempts = [
        basic("alice", PASSWORD + "x"),
        basic("nobody", PASSWORD),
        basic("\u0430lice", PASSWORD),
        f"Bearer {secret[:-2]}zz",
        f"Bearer {secret}x",
        f"Basic {secret}",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    ]
    for header in attempts:
        with pytest.raises(FlowdeckError) as caught:
            await auth.authenticate(header)
        messages.append(caught.value.detail)
    logging.getLogger("flowdeck.test").warning("request failed: Authorization: %s", attempts[0])
    logging.getLogger("flowdeck.test").info("new token %s for %s", secret, alice.username)
    await db.dispose()

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "flowdeck.test" in caplog.text  # the capture did capture
    assert "SELECT" in caplog.text  # database statements and parameters too
    for value in (PASSWORD, secret, secret.split("_", 2)[2], attempts[0].split()[1]):
        assert value not in logged
        assert all(value not in message for message in messages)
