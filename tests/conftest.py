"""Fixtures shared by the whole suite.

``db_settings`` is parametrised over SQLite, PostgreSQL and MariaDB: every test
that uses it (directly or through ``services``/``api``) runs on all three. The
servers are started once per session by tests/support/postgres.py and
tests/support/mariadb.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.api.app import create_app
from flowdeck.db.migrate import upgrade
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: SQLite in tmp_path, fast demo runs, quick polling."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "demo_min_seconds": 0.2,
        "demo_max_seconds": 0.6,
        "demo_success_rate": 1.0,
        "sync_min_seconds": 0.05,
        "sync_max_seconds": 0.5,
        "worker_poll_seconds": 0.05,
        "heartbeat_seconds": 0.5,
        "backends": ["demo"],
        "lease_seconds": 30,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    from tests.support.postgres import shared_server

    return shared_server()  # stopped at interpreter exit


@pytest.fixture(scope="session")
def migrated_template(postgres_server: Any) -> str:
    def migrate(url: str) -> None:
        upgrade(Settings(database_url=url))

    postgres_server.create_template("flowdeck_migrated", setup=migrate)
    return "flowdeck_migrated"


@pytest.fixture(scope="session")
def mariadb_server() -> Any:
    from tests.support.mariadb import shared_server

    return shared_server()  # stopped at interpreter exit


@pytest.fixture(scope="session")
def mariadb_template(mariadb_server: Any) -> str:
    mariadb_server.create_template("flowdeck_migrated", setup=lambda url: upgrade(Settings(database_url=url)))
    return "flowdeck_migrated"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh, migrated database of each kind."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
        upgrade(settings)
        return settings
    if request.param == "mariadb":
        server = request.getfixturevalue("mariadb_server")
        template = request.getfixturevalue("mariadb_template")
        return make_settings(tmp_path, database_url=server.create_database(template=template))
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("migrated_template")
    return make_settings(tmp_path, database_url=server.create_database(template=template))


@pytest.fixture
async def services(db_settings: Settings) -> AsyncIterator[AppContext]:
    ready = AppContext.create(db_settings)
    yield ready
    await ready.close()


@pytest.fixture
async def api(services: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, lifespan included, sharing ``services``."""
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
