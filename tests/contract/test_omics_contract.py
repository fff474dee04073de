"""The backend contract on the omics backend, against the HealthOmics fake (boto3 unmodified,
every request and answer checked against botocore's model) with S3 and CloudWatch Logs on moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.omics import OmicsBackend
from flowdeck.domain.runs import RunSpec
from flowdeck.settings import Settings
from tests.contract import contract
from tests.support.omics import PRIVATE_WORKFLOW, omics_fake, omics_settings
from tests.support.omics_fake import OmicsFake

pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def fake() -> Iterator[OmicsFake]:
    with omics_fake(timing={"pending": 0.1, "starting": 0.1, "task": 0.2, "stopping": 0.2}) as running:
        yield running


@pytest.fixture
def settings(fake: OmicsFake, tmp_path: Path) -> Settings:
    return Settings(**omics_settings(fake, tmp_path / "data"))


@pytest.fixture
def subject(settings: Settings, tmp_path: Path) -> contract.Subject:
    def make_spec(run_id: str, params: dict[str, Any], engine: dict[str, str]) -> RunSpec:
        return RunSpec(
            run_id=f"{tmp_path.name}-{run_id}",  # one fake serves the module: run ids stay apart
            workflow_type="WDL",
            workflow_type_version="1.0",
            workflow_url=PRIVATE_WORKFLOW,
            workflow_params=params,
            workdir=tmp_path / "runs" / run_id,
            attachments_dir=tmp_path,
            engine_parameters=engine,
            pipeline_target={"kind": "omics_workflow_id", "workflow": PRIVATE_WORKFLOW},
        )

    return contract.Subject(
        make_backend=lambda: OmicsBackend(settings),
        make_spec=make_spec,
        ok_params={"message": "hello flowdeck"},
        fail_params={"message": "hello flowdeck", "fail": True},
        long_params={"message": "hello flowdeck", "sleep_seconds": 300},
        timeout=30,
    )


@pytest.fixture(autouse=True)
def no_violations(fake: OmicsFake) -> Iterator[None]:
    yield
    assert fake.take_violations() == []


def test_run_to_complete(subject: contract.Subject) -> None:
    report = contract.run_to_complete(subject)
    assert [task.name for task in report.tasks or []] == ["greet", "shout"]
    names = sorted(f.name for f in report.output_files or [])
    assert names == ["out/greeting.txt", "out/shouted.txt"]
    assert report.exit_code == 0


def test_failing_step(subject: contract.Subject) -> None:
    report = contract.failing_step(subject, stderr_text="shout failed on purpose")
    failed = [task for task in report.tasks or [] if task.state.value == "EXECUTOR_ERROR"]
    assert [task.name for task in failed] == ["shout"]
    assert "WORKFLOW_RUN_FAILED" in (report.reason or "")


def test_cancel_long_step(subject: contract.Subject) -> None:
    contract.cancel_long_step(subject, running_task="shout")


def test_unknown_handle(subject: contract.Subject, tmp_path: Path) -> None:
    contract.unknown_handle(subject, tmp_path)


def test_worker_killed_run_reaches_its_end(subject: contract.Subject, settings: Settings) -> None:
    contract.worker_killed(subject, "omics", settings.model_dump_json())
