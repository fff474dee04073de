"""The demo backend passes the parts of the contract that apply to a simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.demo import DemoBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput
from flowdeck.settings import Settings
from tests.contract import contract


@pytest.fixture
def subject(tmp_path: Path) -> contract.Subject:
    settings = Settings(data_dir=tmp_path / "data", demo_min_seconds=0.1, demo_max_seconds=0.3)

    def make_spec(run_id: str, params: dict[str, Any], engine: dict[str, str]) -> RunSpec:
        # The simulation takes its fate from engine parameters, not from the workflow.
        return RunSpec(
            run_id=run_id,
            workflow_type="DEMO",
            workflow_type_version="1.0",
            workflow_url="demo",
            workflow_params={},
            workdir=tmp_path / run_id,
            attachments_dir=tmp_path,
            engine_parameters={**params, **engine},
        )

    return contract.Subject(
        make_backend=lambda: DemoBackend(settings),
        make_spec=make_spec,
        ok_params={"outcome": "success", "duration_seconds": "0.3"},
        fail_params={"outcome": "failure", "duration_seconds": "0.3"},
        long_params={"duration_seconds": "600"},
        timeout=10,
    )


def test_run_to_complete(subject: contract.Subject) -> None:
    contract.run_to_complete(subject)


def test_failing_step(subject: contract.Subject) -> None:
    contract.failing_step(subject)


def test_cancel(subject: contract.Subject) -> None:
    contract.cancel_long_step(subject)


def test_recover_after_restart(subject: contract.Subject) -> None:
    backend = subject.make_backend()
    handle = contract.submit(backend, subject.make_spec("again", subject.ok_params, {}))
    report = contract.wait_done(subject.make_backend(), handle, subject.timeout)
    assert report.state is State.COMPLETE


def test_settings_tune_the_simulation(subject: contract.Subject) -> None:
    report = contract.run_to_complete(subject, run_id="drawn")
    assert report.outputs
    assert report.outputs["simulated"] is True


@pytest.mark.parametrize("engine", [{"outcome": "maybe"}, {"duration_seconds": "soon"}, {"colour": "red"}])
def test_bad_engine_parameters(subject: contract.Subject, engine: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        subject.make_backend().validate(subject.make_spec("bad", {}, engine))
