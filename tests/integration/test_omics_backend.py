"""The omics backend against the HealthOmics fake: idempotent dispatch, AWS failures that never
move a run, every HealthOmics state mapped, Ready2Run, tasks and logs, outputs, inputs."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.omics import OmicsBackend
from flowdeck.backends.omics_aws import RUN_STATES, TASK_STATES
from flowdeck.backends.registry import Registry
from flowdeck.domain.runs import RunHandle, RunSpec, Submitted
from flowdeck.domain.states import State
from flowdeck.errors import EngineError, EngineUnavailable, InvalidInput
from flowdeck.settings import Settings
from tests.contract import contract
from tests.support.omics import ACCESS_KEY, PRIVATE_WORKFLOW, READY2RUN_WORKFLOW, SECRET_KEY, omics_fake, omics_settings
from tests.support.omics_fake import OmicsFake

pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def fake() -> Iterator[OmicsFake]:
    with omics_fake(timing={"pending": 0.1, "starting": 0.1, "task": 0.2, "stopping": 0.2}) as running:
        yield running


@pytest.fixture(autouse=True)
def no_violations(fake: OmicsFake) -> Iterator[None]:
    yield
    assert fake.take_violations() == []


def make(fake: OmicsFake, tmp_path: Path, **overrides: Any) -> OmicsBackend:
    return OmicsBackend(Settings(**omics_settings(fake, tmp_path / "data", **overrides)))


def spec(tmp_path: Path, run_id: str, workflow: str = PRIVATE_WORKFLOW, **fields: Any) -> RunSpec:
    values: dict[str, Any] = {
        "run_id": f"{tmp_path.name}-{run_id}",
        "workflow_type": "WDL",
        "workflow_type_version": "1.0",
        "workflow_url": workflow,
        "workflow_params": {"message": "hello flowdeck"},
        "workdir": tmp_path / "runs" / run_id,
        "attachments_dir": tmp_path,
        **fields,
    }
    return RunSpec(**values)


def handle_of(run: RunSpec, submitted: Submitted) -> RunHandle:
    return RunHandle(run.run_id, submitted.backend_run_id, submitted.backend_data, run.workdir, submitted.state)


def runs_for(fake: OmicsFake, run: RunSpec) -> list[str]:
    return [rid for rid, r in fake.state()["runs"].items() if r["requestId"] == f"flowdeck-{run.run_id}"]


def test_every_healthomics_state_is_mapped() -> None:
    from botocore.loaders import Loader

    shapes = Loader().load_service_model("omics", "service-2")["shapes"]
    assert set(RUN_STATES) == set(shapes["RunStatus"]["enum"])
    assert set(TASK_STATES) == set(shapes["TaskStatus"]["enum"])
    assert RUN_STATES["PENDING"] is RUN_STATES["STARTING"] is State.INITIALIZING
    assert RUN_STATES["FAILED"] is State.EXECUTOR_ERROR
    assert RUN_STATES["CANCELLED"] is State.CANCELED


def test_a_retried_dispatch_starts_one_run(fake: OmicsFake, tmp_path: Path) -> None:
    backend, run = make(fake, tmp_path), spec(tmp_path, "twice")
    first, second = backend.submit(run), make(fake, tmp_path).submit(run)
    assert first.backend_run_id == second.backend_run_id
    assert runs_for(fake, run) == [first.backend_run_id]


def test_a_lost_start_answer_is_retried_onto_the_same_run(fake: OmicsFake, tmp_path: Path) -> None:
    """StartRun took effect but its answer was a 500: botocore retries with the same requestId."""
    fake.fault("StartRun", "InternalServerException", after=True)
    run = spec(tmp_path, "lost")
    submitted = make(fake, tmp_path).submit(run)
    assert runs_for(fake, run) == [submitted.backend_run_id]


def test_a_throttled_getrun_storm_never_changes_a_state(fake: OmicsFake, tmp_path: Path) -> None:
    backend, run = make(fake, tmp_path), spec(tmp_path, "storm")
    handle = handle_of(run, backend.submit(run))
    before = fake.state()["calls"].get("GetRun", 0)
    fake.fault("GetRun", "ThrottlingException", count=6)
    for _ in range(3):  # omics_max_attempts=2: each sync spends two throttled calls
        report = backend.sync([handle])[0]
        assert report.state is None, report
        assert report.tasks is None
        assert report.transient_error
        assert "ThrottlingException" in report.transient_error
        assert report.retry_after
    assert fake.state()["calls"]["GetRun"] - before == 6
    assert contract.wait_done(backend, handle, 30).state is State.COMPLETE


def test_an_expired_credential_is_transient_and_never_logged(
    fake: OmicsFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend, run = make(fake, tmp_path), spec(tmp_path, "expired")
    handle = handle_of(run, backend.submit(run))
    fake.expire(ACCESS_KEY)
    try:
        report = backend.sync([handle])[0]
        assert report.state is None
        assert "ExpiredTokenException" in (report.transient_error or "")
        with pytest.raises(EngineUnavailable):
            backend.submit(spec(tmp_path, "while-expired"))
    finally:
        fake.expire(ACCESS_KEY, expired=False)
    assert contract.wait_done(backend, handle, 30).state is State.COMPLETE
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY not in (report.transient_error or "")


def test_a_ready2run_workflow(fake: OmicsFake, tmp_path: Path) -> None:
    backend = make(fake, tmp_path)
    run = spec(
        tmp_path, "r2r", pipeline_target={"kind": "omics_workflow_id", "workflow": f"ready2run:{READY2RUN_WORKFLOW}"}
    )
    submitted = backend.submit(run)
    assert submitted.backend_data["workflow_type"] == "READY2RUN"
    assert contract.wait_done(backend, handle_of(run, submitted), 30).state is State.COMPLETE
    with pytest.raises(EngineError) as refused:  # a private id is no Ready2Run workflow
        backend.submit(spec(tmp_path, "r2r-wrong", workflow=f"ready2run:{PRIVATE_WORKFLOW}"))
    assert not isinstance(refused.value, EngineUnavailable)


def test_tasks_logs_and_presigned_outputs(fake: OmicsFake, tmp_path: Path) -> None:
    backend, run = make(fake, tmp_path), spec(tmp_path, "outputs")
    report = contract.wait_done(backend, handle_of(run, backend.submit(run)), 30)
    assert report.state is State.COMPLETE
    greet, shout = report.tasks or []
    assert "hello flowdeck" in Path(greet.stdout_path or "").read_text()
    assert "HELLO FLOWDECK" in Path(shout.stderr_path or "").read_text()
    assert "completed" in Path(report.stderr_path or "").read_text()
    assert all(f.location.startswith("s3://flowdeck-omics-out/runs/") and f.size for f in report.output_files or [])
    url = (report.outputs or {})["out/shouted.txt"]
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"HELLO FLOWDECK\n"


def test_cancel_of_an_ended_run_says_so(fake: OmicsFake, tmp_path: Path) -> None:
    backend, run = make(fake, tmp_path), spec(tmp_path, "late-cancel")
    handle = handle_of(run, backend.submit(run))
    contract.wait_done(backend, handle, 30)
    result = backend.cancel(handle)
    assert not result.confirmed
    assert "ConflictException" in (result.message or "")


def test_local_inputs_are_staged_and_s3_inputs_pass_through(fake: OmicsFake, tmp_path: Path) -> None:
    backend = make(fake, tmp_path)
    local = tmp_path / "data" / "reads.fastq"
    local.parent.mkdir(parents=True)
    local.write_text("@r1\nACGT\n+\nIIII\n")
    params = {
        "message": "hi",
        "reads": f"file://{local}",
        "ref": "s3://refs/genome.fa",
        "more": [{"uri": f"file://{local}"}],
    }
    run = spec(tmp_path, "staged", workflow_params=params)
    backend.validate(run)
    submitted = backend.submit(run)
    sent = backend.aws.omics.get_run(id=submitted.backend_run_id)["parameters"]
    staged = f"s3://flowdeck-omics-staging/inputs/{run.run_id}/reads.fastq"
    assert sent == {"message": "hi", "reads": staged, "ref": "s3://refs/genome.fa", "more": [staged]}
    body = backend.aws.s3.get_object(Bucket="flowdeck-omics-staging", Key=staged.split("/", 3)[3])["Body"].read()
    assert body == local.read_bytes()


def test_local_inputs_need_a_staging_prefix_and_an_allowed_folder(fake: OmicsFake, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="STAGING_URI"):
        make(fake, tmp_path, omics_staging_uri=None).validate(
            spec(tmp_path, "x", workflow_params={"r": "file:///etc/hostname"})
        )
    with pytest.raises(EngineError, match="must lie under"):
        make(fake, tmp_path).submit(spec(tmp_path, "y", workflow_params={"r": "file:///etc/hostname"}))


def test_storage_run_group_and_priority(fake: OmicsFake, tmp_path: Path) -> None:
    backend = make(fake, tmp_path, omics_storage_type="STATIC", omics_storage_capacity=1200, omics_priority=5)
    static = backend.submit(spec(tmp_path, "static"))
    got = backend.aws.omics.get_run(id=static.backend_run_id)
    assert (got["storageType"], got["storageCapacity"], got["priority"]) == ("STATIC", 1200, 5)
    dynamic = backend.submit(
        spec(tmp_path, "dynamic", engine_parameters={"storage_type": "DYNAMIC", "run_group_id": "42"})
    )
    got = backend.aws.omics.get_run(id=dynamic.backend_run_id)
    assert got["storageType"] == "DYNAMIC"
    assert "storageCapacity" not in got
    assert got["runGroupId"] == "42"


@pytest.mark.parametrize("workflow", ["abc", "ready2run:", "arn:aws:s3:::bucket", "12345678901234567890"])
def test_bad_workflow_names_are_refused(fake: OmicsFake, tmp_path: Path, workflow: str) -> None:
    with pytest.raises(InvalidInput):
        make(fake, tmp_path).validate(spec(tmp_path, "bad", workflow=workflow))


def test_workflow_forms(fake: OmicsFake, tmp_path: Path) -> None:
    from flowdeck.backends.omics_aws import OmicsWorkflow, parse_workflow

    assert parse_workflow("1234567") == OmicsWorkflow("1234567")
    assert parse_workflow("Ready2Run:9500001") == OmicsWorkflow("9500001", "READY2RUN")
    assert parse_workflow("private:1234567@v2") == OmicsWorkflow("1234567", "PRIVATE", "v2")
    assert parse_workflow("arn:aws:omics:eu-west-1:123456789012:workflow/1234567") == OmicsWorkflow("1234567")


def test_the_fake_refuses_what_breaks_the_model(fake: OmicsFake) -> None:
    """With botocore's own checks off, a request without roleArn reaches the fake: it refuses it."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "omics",
        endpoint_url=fake.url,
        region_name="us-east-1",
        config=Config(parameter_validation=False, inject_host_prefix=False, retries={"max_attempts": 1}),
    )
    with pytest.raises(client.exceptions.ValidationException):
        client.start_run(workflowId=PRIVATE_WORKFLOW, outputUri="s3://b/o/", requestId="no-role")
    with pytest.raises(client.exceptions.ValidationException):
        client.start_run(workflowId="x1", roleArn="arn:aws:iam::1:role/r", outputUri="s3://b/o/", requestId="bad-id")
    violations = fake.take_violations()
    assert len(violations) == 2, violations
    assert "roleArn" in violations[0]
    assert "workflowId" in violations[1]


def test_registry_enables_omics_only_when_configured(fake: OmicsFake, tmp_path: Path) -> None:
    assert "omics" in Registry(Settings(**omics_settings(fake, tmp_path / "data")))
    assert "omics" not in Registry(Settings(**omics_settings(fake, tmp_path / "data", omics_role_arn=None)))


def test_a_catalog_pipeline_runs_on_omics(fake: OmicsFake, tmp_path: Path) -> None:
    """A pipeline file with an omics target hands the backend a target it starts (Ready2Run here)."""
    from flowdeck.services.pipelines.catalog import parse_file

    text = (
        f'name: r2r\nversion: "1.0.0"\ndescription: A Ready2Run workflow.\nbackend: omics\ntarget:\n  omics_workflow_id: "ready2run:{READY2RUN_WORKFLOW}"\n'
        "parameters:\n  type: object\n  properties:\n    message: {type: string}\n"
    )
    pipeline = parse_file(tmp_path / "r2r.yaml", text)
    run = spec(tmp_path, "catalog", workflow="", pipeline_target=pipeline.target.as_dict())
    backend = make(fake, tmp_path)
    backend.validate(run)
    assert Registry(Settings(**omics_settings(fake, tmp_path / "data"))).choose(pipeline.target.workflow_type, "omics")
    report = contract.wait_done(backend, handle_of(run, backend.submit(run)), 30)
    assert report.state is State.COMPLETE


def test_a_running_run_is_one_getrun_call_until_its_tasks_are_due(fake: OmicsFake, tmp_path: Path) -> None:
    backend = make(fake, tmp_path, omics_task_refresh_seconds=3600)
    run = spec(tmp_path, "quiet", workflow_params={"message": "m", "sleep_seconds": 300})
    handle = handle_of(run, backend.submit(run))
    first = contract.wait_for(backend, handle, 30, lambda r: r.state is State.RUNNING)
    assert first.tasks
    handle = RunHandle(handle.run_id, handle.backend_run_id, first.backend_data or {}, handle.workdir, State.RUNNING)
    before = fake.state()["calls"]
    again = backend.sync([handle])[0]
    after = fake.state()["calls"]
    assert again.state is State.RUNNING
    assert again.tasks is None
    assert after.get("ListRunTasks", 0) == before.get("ListRunTasks", 0)
    assert after["GetRun"] == before["GetRun"] + 1
    backend.cancel(handle)


def test_many_steady_runs_are_read_from_listruns_pages_and_a_changed_one_by_getrun(
    fake: OmicsFake, tmp_path: Path
) -> None:
    backend = make(fake, tmp_path, omics_task_refresh_seconds=3600)
    runs = [spec(tmp_path, f"r{i}", workflow_params={"message": "m", "sleep_seconds": 300}) for i in range(25)]
    handles = [handle_of(run, backend.submit(run)) for run in runs]
    first = [contract.wait_for(backend, h, 30, lambda r: r.state is State.RUNNING) for h in handles]
    handles = [
        RunHandle(h.run_id, h.backend_run_id, r.backend_data or {}, h.workdir, State.RUNNING)
        for h, r in zip(handles, first, strict=True)
    ]
    backend.cancel(handles[3])  # ends between two syncs: the listing no longer shows it RUNNING
    contract.wait_for(backend, handles[3], 30, lambda r: r.state is State.CANCELED)
    before = fake.state()["calls"]
    reports = backend.sync(handles)
    after = fake.state()["calls"]
    assert [r.run_id for r in reports] == [h.run_id for h in handles]
    assert reports[3].state is State.CANCELED
    assert all(r.state is State.RUNNING for i, r in enumerate(reports) if i != 3)
    assert after["GetRun"] - before.get("GetRun", 0) == 1  # only the one that changed
    assert after["ListRuns"] - before.get("ListRuns", 0) >= 1
    for handle in handles:
        backend.cancel(handle)


def test_listruns_failing_falls_back_to_one_getrun_a_run(fake: OmicsFake, tmp_path: Path) -> None:
    backend = make(fake, tmp_path, omics_task_refresh_seconds=3600, omics_max_attempts=1)
    runs = [spec(tmp_path, f"f{i}", workflow_params={"message": "m", "sleep_seconds": 300}) for i in range(20)]
    handles = [handle_of(run, backend.submit(run)) for run in runs]
    first = [contract.wait_for(backend, h, 30, lambda r: r.state is State.RUNNING) for h in handles]
    handles = [
        RunHandle(h.run_id, h.backend_run_id, r.backend_data or {}, h.workdir, State.RUNNING)
        for h, r in zip(handles, first, strict=True)
    ]
    fake.fault("ListRuns", "ThrottlingException", count=1)
    before = fake.state()["calls"]
    reports = backend.sync(handles)
    after = fake.state()["calls"]
    assert all(r.state is State.RUNNING for r in reports)
    assert after["GetRun"] - before.get("GetRun", 0) == 20
    for handle in handles:
        backend.cancel(handle)
