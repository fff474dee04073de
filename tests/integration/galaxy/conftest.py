"""A real Galaxy for this folder's tests: installed once (cached), started per session.

``galaxy_server`` is session-scoped: the first test that asks for it pays the start (~90 s on a
quiet machine, ~5 min at load 11, and up.sh waits up to 900 s; plus ~3 min the very first time
while ``scripts/galaxy/install.sh`` installs Galaxy into ``$FLOWDECK_GALAXY_VENV``). Every test
module here is marked ``galaxy`` (deselect with ``-m "not galaxy"``). See tests/support/galaxy.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.settings import Settings
from tests.support.galaxy import GalaxyServer, galaxy_session

INPUT_TEXT = "banana\t1\napple\t2\ncherry\t3\n"


@pytest.fixture(scope="session")
def galaxy_server() -> Iterator[GalaxyServer]:
    with galaxy_session() as server:
        yield server


@pytest.fixture
def galaxy_settings(galaxy_server: GalaxyServer, tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    (data / "inputs" / "fruit.tsv").write_text(INPUT_TEXT)
    return Settings(
        data_dir=data,
        galaxy_url=galaxy_server.url,
        galaxy_api_key=galaxy_server.api_key,
        galaxy_timeout_seconds=10,
        sync_concurrency=4,
    )


@pytest.fixture
def backend(galaxy_settings: Settings) -> GalaxyBackend:
    return GalaxyBackend(galaxy_settings)


SpecMaker = Callable[..., RunSpec]


@pytest.fixture
def make_spec(galaxy_settings: Settings) -> SpecMaker:
    """A RunSpec for a test workflow, on the staged fruit.tsv unless told otherwise."""
    data = galaxy_settings.data_dir

    def make(workflow: str, params: dict[str, Any] | None = None, run_id: str | None = None, **dataset: Any) -> RunSpec:
        run_id = run_id or f"t-{uuid4().hex[:12]}"
        ref: dict[str, Any] = {"uri": f"file://{data / 'inputs' / 'fruit.tsv'}", "file_type": "tabular"}
        ref = dataset if {"uri", "galaxy_dataset_id"} & set(dataset) else {**ref, **dataset}
        return RunSpec(
            run_id=run_id,
            workflow_type="GALAXY",
            workflow_type_version="gxformat2",
            workflow_url=f"galaxy://workflow/{workflow}",
            workflow_params=params or {},
            workdir=data / "runs" / run_id,
            attachments_dir=data,
            dataset=ref,
        )

    return make
