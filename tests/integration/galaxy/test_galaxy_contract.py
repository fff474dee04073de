"""The shared backend contract (tests/contract/contract.py), run for Galaxy for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.settings import Settings
from tests.contract import contract

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]


@pytest.fixture
def subject(galaxy_settings: Settings) -> contract.Subject:
    data = galaxy_settings.data_dir
    batch = uuid4().hex[:8]  # run ids are history names in Galaxy: keep them unique per test

    def make_spec(run_id: str, params: dict[str, Any], engine: dict[str, str]) -> RunSpec:
        workflow = params.get("workflow", "flowdeck_sort_upper")
        run_id = f"{run_id}-{batch}"
        return RunSpec(
            run_id=run_id,
            workflow_type="GALAXY",
            workflow_type_version="gxformat2",
            workflow_url=f"galaxy://workflow/{workflow}",
            workflow_params={k: v for k, v in params.items() if k != "workflow"},
            workdir=data / "runs" / run_id,
            attachments_dir=data,
            engine_parameters=engine,
            dataset={"uri": f"file://{data / 'inputs' / 'fruit.tsv'}", "file_type": "tabular"},
        )

    return contract.Subject(
        make_backend=lambda: GalaxyBackend(galaxy_settings),
        make_spec=make_spec,
        ok_params={},
        fail_params={"workflow": "flowdeck_fail"},
        long_params={"workflow": "flowdeck_sleep", "seconds": 300},
        processes=None,
        timeout=180,
    )


def test_run_to_complete(subject: contract.Subject) -> None:
    contract.run_to_complete(subject)


def test_failing_step(subject: contract.Subject) -> None:
    contract.failing_step(subject, stderr_text="deliberate failure")


def test_cancel_long_step(subject: contract.Subject) -> None:
    contract.cancel_long_step(subject, running_task="sleep")


def test_unknown_handle(subject: contract.Subject, tmp_path: Path) -> None:
    contract.unknown_handle(subject, tmp_path)
