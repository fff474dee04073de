"""A flowdeck app in auth mode ``basic`` on a test database, with cheap argon2,
and a few users: for the account and isolation tests."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from flowdeck.api.app import create_app
from flowdeck.db import accounts
from flowdeck.services.auth import users
from flowdeck.services.auth.authenticate import Authenticator
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.support.auth import cheap_passwords

PASSWORD = "correct horse battery"


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    """The ``Authorization`` header of a Basic sign-in."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic_settings(db_settings: Settings) -> Settings:
    """``db_settings`` (a migrated database of either kind) in auth mode ``basic``."""
    return db_settings.model_copy(update={"auth_mode": "basic"})


@asynccontextmanager
async def basic_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, AppContext, httpx.AsyncClient]]:
    """The app (lifespan included) with a cheap-hashing authenticator, and a client on it."""
    services = AppContext.create(settings)
    app = create_app(settings, services)
    try:
        async with app.router.lifespan_context(app):
            app.state.authenticator = Authenticator(settings, services.db, passwords=cheap_passwords())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield app, services, client
    finally:
        await services.close()


async def add_user(
    services: AppContext, name: str, *, admin: bool = False, groups: dict[str, str] | None = None
) -> None:
    """A user with :data:`PASSWORD`, in ``groups`` (created when missing) with the given roles."""
    await users.create_user(services.db, name, PASSWORD, is_admin=admin, passwords=cheap_passwords())
    for group, role in (groups or {}).items():
        async with services.db.write() as conn:
            await accounts.ensure_group(conn, group)
        await users.add_member(services.db, name, group, role)
