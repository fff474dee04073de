"""What ``flowdeck api`` keeps in memory after start (bench/run.py measures its idle RSS).

Libraries that the server uses at most once at start, or only for other commands, stay out of
its process: the CLI client's HTTP stack, and the parsing of the pipeline catalog, which is
checked at start in a child process and parsed by the server on first use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Catalog, CatalogFiles
from tests.conftest import make_settings

# What `flowdeck api` must not have loaded once it serves: httpx (with the rich, pygments and
# click of its CLI) is the client commands' only.
NOT_LOADED = ("httpx", "rich", "pygments", "jsonschema", "yaml", "argon2")
GALAXY_CLIENT = ("bioblend", "requests", "aiohttp")

# Runs `flowdeck api` as the command does, up to the point where uvicorn would serve the app; the
# app's lifespan (AppContext.create) has run when the modules are listed.
_REPORT = f"""
import sys
import flowdeck.api.server


async def report(app, settings, stop=None, sock=None):
    async with app.router.lifespan_context(app):
        catalog = type(app.state.services._catalog).__name__
        print(catalog, sorted(m for m in {NOT_LOADED!r} if m in sys.modules))


flowdeck.api.server.serve = report
from flowdeck.cli.main import main

sys.exit(main(["api"]))
"""


def _flowdeck_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update({"FLOWDECK_DATA_DIR": str(tmp_path / "data"), "FLOWDECK_LOG_LEVEL": "WARNING", **extra})
    return env


def test_flowdeck_api_starts_without_the_client_stack_and_an_unparsed_catalog(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _REPORT],
        # As bench/run.py runs it: an engine backend's module brings its own libraries (cwltool's
        # PyYAML), which are the backends' to keep out.
        env=_flowdeck_env(tmp_path, FLOWDECK_BACKENDS="demo"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "CatalogFiles []"


def test_an_unconfigured_galaxy_backend_loads_no_galaxy_client(tmp_path: Path) -> None:
    """The default backends: Galaxy's client stack (BioBlend, requests, aiohttp: ~17 MB) waits
    for a Galaxy to talk to."""
    report = _REPORT.replace(repr(NOT_LOADED), repr(GALAXY_CLIENT))
    result = subprocess.run(
        [sys.executable, "-c", report],
        env=_flowdeck_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "CatalogFiles []"


def test_a_broken_catalog_stops_flowdeck_api_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nversion: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "flowdeck.cli.main", "api", "--no-migrate"],
        env=_flowdeck_env(tmp_path, FLOWDECK_PIPELINES_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "bad.yaml: version: 1 reads as a number" in result.stderr


async def test_the_catalog_parsed_on_first_use_is_the_one_checked_at_start(tmp_path: Path) -> None:
    source = Catalog.load().get("gatk_variant_calling", "1.0.0").source.read_text()
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "p.yaml").write_text(source)
    files = CatalogFiles.read(folder)
    files.load()  # the check at start
    (folder / "p.yaml").write_text("name: x\nversion: 1\n")
    services = AppContext.create(make_settings(tmp_path, pipelines_dir=folder), catalog_files=files)
    try:
        assert services.catalog.names() == ["gatk_variant_calling"]
        assert services.catalog is services.catalog
    finally:
        await services.close()
