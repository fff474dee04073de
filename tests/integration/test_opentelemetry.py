"""FLOWDECK_OPENTELEMETRY: FastAPI's native spans reach a configured SDK only when asked for."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowdeck.api.app import create_app
from flowdeck.db.migrate import upgrade
from tests.conftest import make_settings

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def sdk() -> None:
    """A process-wide SDK, as an operator's would be (the global provider can be set once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.mark.parametrize("enabled", [True, False])
async def test_request_spans_only_when_enabled(tmp_path: Path, enabled: bool) -> None:
    settings = make_settings(tmp_path, opentelemetry=enabled)
    upgrade(settings)
    app = create_app(settings)
    _EXPORTER.clear()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/ga4gh/wes/v1/runs/no-such-run/status")).status_code == 404
    names = [span.name for span in _EXPORTER.get_finished_spans()]
    if enabled:
        assert any("/ga4gh/wes/v1/runs/{run_id}/status" in name for name in names), names
    else:
        assert names == []
