"""service-info on the embedded default, and with an engine that cannot be reached."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from flowdeck.api.app import create_app
from flowdeck.backends.registry import Registry
from flowdeck.db.migrate import upgrade
from flowdeck.settings import Settings

WES = "/ga4gh/wes/v1"


async def service_info(settings: Settings) -> httpx.Response:
    upgrade(settings)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(f"{WES}/service-info")


async def test_default_settings_answer_service_info(tmp_path: Path) -> None:
    """`make run` enables every installed backend; one that is not configured is left out, not a 500."""
    response = await service_info(Settings(data_dir=tmp_path))
    assert response.status_code == 200, response.text
    engines = response.json()["workflow_engine_versions"]
    assert "demo" in engines
    assert "galaxy" not in engines


def test_a_backend_without_its_configuration_is_not_enabled(tmp_path: Path) -> None:
    assert "galaxy" not in Registry(Settings(data_dir=tmp_path, backends=["demo", "galaxy"]))


async def test_an_unreachable_engine_reports_an_unknown_version(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket closes
    settings = Settings(
        data_dir=tmp_path,
        backends=["demo", "galaxy"],
        galaxy_url=f"http://127.0.0.1:{closed}",
        galaxy_api_key="k" * 32,
        galaxy_timeout_seconds=2,
    )
    if "galaxy" not in Registry(settings):
        pytest.skip("bioblend is not installed")
    response = await service_info(settings)
    assert response.status_code == 200, response.text
    assert response.json()["workflow_engine_versions"]["galaxy"] == {"workflow_engine_version": ["unknown"]}
