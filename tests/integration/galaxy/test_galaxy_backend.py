"""The Galaxy backend against a real Galaxy server (see conftest.py)."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bioblend.galaxy import GalaxyInstance
from pydantic import SecretStr

from flowdeck.backends.galaxy import backend as galaxy_backend
from flowdeck.backends.galaxy.backend import GalaxyBackend, history_name
from flowdeck.domain.runs import RunHandle
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import EngineError, InvalidInput
from flowdeck.settings import Settings
from tests.integration.galaxy.conftest import INPUT_TEXT, SpecMaker
from tests.integration.galaxy.helpers import advance, submit, sync_until, task_running, wait_terminal
from tests.support.galaxy import WORKFLOWS, GalaxyServer

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]

SORTED_UPPER = "APPLE\t2\nBANANA\t1\nCHERRY\t3\n"


def galaxy(server: GalaxyServer) -> GalaxyInstance:
    return GalaxyInstance(server.url, key=server.api_key)


@pytest.fixture
def http_input(tmp_path: Path) -> Iterator[str]:
    """fruit.tsv served over HTTP on loopback, for Galaxy to fetch."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "fruit.txt").write_text(INPUT_TEXT.lower())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fruit.txt"
    server.shutdown()


def test_two_step_workflow_completes_with_its_output(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    handle = submit(backend, make_spec("flowdeck_sort_upper"))
    assert handle.state is State.INITIALIZING
    assert handle.backend_data["history_id"]
    assert handle.backend_data["workflow_name"] == "flowdeck_sort_upper"

    report = wait_terminal(backend, handle)

    assert report.state is State.COMPLETE, report
    assert [task.name for task in report.tasks or []] == ["sort", "upper"]
    assert all(task.state is State.COMPLETE and task.exit_code == 0 for task in report.tasks or [])
    assert all(Path(task.stdout_path or "").is_file() for task in report.tasks or [])
    [output] = report.output_files or []
    assert output.name == "sorted_upper"
    assert Path(output.location).read_text() == SORTED_UPPER
    assert output.size == len(SORTED_UPPER)
    assert (output.checksum or "").startswith("sha256:")
    assert report.outputs
    assert report.outputs["sorted_upper"]["galaxy_url"].startswith(backend.api.url)


def test_subworkflow_jobs_are_followed_and_inputs_fetched_from_urls(
    backend: GalaxyBackend, make_spec: SpecMaker, http_input: str
) -> None:
    spec = make_spec("flowdeck_nested", uri=http_input, file_type="txt")
    report = wait_terminal(backend, submit(backend, spec))

    assert report.state is State.COMPLETE, report
    names = [task.name for task in report.tasks or []]
    assert "inner/inner_upper" in names, names
    assert "copy" in names, names
    [output] = report.output_files or []
    assert Path(output.location).read_text() == INPUT_TEXT.upper()


def test_failing_tool_ends_executor_error_with_its_stderr(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    report = wait_terminal(backend, submit(backend, make_spec("flowdeck_fail")))

    assert report.state is State.EXECUTOR_ERROR, report
    assert "deliberate failure" in (report.reason or "")
    failed = [task for task in report.tasks or [] if task.state is State.EXECUTOR_ERROR]
    assert [task.name for task in failed] == ["fail"]
    assert failed[0].exit_code == 3
    assert "flowdeck_fail: deliberate failure" in Path(failed[0].stderr_path or "").read_text()
    assert report.stderr_path == failed[0].stderr_path
    # the step after the failure never runs: Galaxy pauses it
    assert [task.state for task in report.tasks or [] if task.name == "upper"] == [State.PAUSED]


def test_cancel_is_confirmed_by_a_later_sync(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    handle = submit(backend, make_spec("flowdeck_sleep", {"seconds": 300}, file_type="txt"))
    # Cancelling while Galaxy's local runner is still dispatching the job loses the job's
    # process (Galaxy: "no PID in database for job"), so cancel once it runs.
    handle, _ = sync_until(backend, handle, task_running("sleep"))

    result = backend.cancel(handle)

    assert result.confirmed is False
    report = wait_terminal(backend, handle, timeout=120)
    assert report.state is State.CANCELED, report
    assert all(is_terminal(task.state) for task in report.tasks or []), report.tasks


def test_retried_submit_after_a_crash_does_not_invoke_twice(
    galaxy_settings: Settings, galaxy_server: GalaxyServer, make_spec: SpecMaker
) -> None:
    spec = make_spec("flowdeck_sort_upper")
    first = GalaxyBackend(galaxy_settings).submit(spec)
    # the worker died before recording the answer: a fresh worker submits again
    second = GalaxyBackend(galaxy_settings).submit(spec)

    assert second.backend_run_id == first.backend_run_id
    history_id = first.backend_data["history_id"]
    assert second.backend_data["history_id"] == history_id
    gi = galaxy(galaxy_server)
    assert len(gi.invocations.get_invocations(history_id=history_id)) == 1
    assert [h["id"] for h in gi.histories.get_histories(name=history_name(spec.run_id))] == [history_id]
    assert f"flowdeck_run:{spec.run_id}" in gi.histories.show_history(history_id)["tags"]


def test_retried_submit_after_a_crash_before_invoking_invokes_once(
    backend: GalaxyBackend, galaxy_server: GalaxyServer, make_spec: SpecMaker
) -> None:
    spec = make_spec("flowdeck_sort_upper")
    gi = galaxy(galaxy_server)
    history_id = gi.histories.create_history(history_name(spec.run_id))["id"]  # crashed right after this

    submitted = backend.submit(spec)

    assert submitted.backend_data["history_id"] == history_id
    assert [i["id"] for i in gi.invocations.get_invocations(history_id=history_id)] == [submitted.backend_run_id]


def test_galaxy_frozen_mid_run_gives_transient_reports_then_the_true_state(
    galaxy_settings: Settings, galaxy_server: GalaxyServer, make_spec: SpecMaker
) -> None:
    backend = GalaxyBackend(galaxy_settings.model_copy(update={"galaxy_timeout_seconds": 2}))
    handle = submit(backend, make_spec("flowdeck_sort_upper"))
    pid = int((galaxy_server.root / "run" / "galaxy.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # the web server stops answering; its jobs go on
    try:
        reports = [backend.sync([handle])[0] for _ in range(2)]
    finally:
        os.kill(pid, signal.SIGCONT)

    assert all(r.state is None for r in reports), reports
    assert all(r.transient_error and r.retry_after for r in reports), reports
    report = wait_terminal(backend, handle)
    assert report.state is State.COMPLETE, report
    assert Path((report.output_files or [])[0].location).read_text() == SORTED_UPPER


def test_galaxy_down_mid_run_gives_transient_reports_then_the_true_state(
    backend: GalaxyBackend, galaxy_server: GalaxyServer, make_spec: SpecMaker
) -> None:
    # An input already in Galaxy, so no upload is in flight when Galaxy stops: Galaxy
    # loses a running upload's celery task for good (the run would then hang, truly).
    gi = galaxy(galaxy_server)
    history_id = gi.histories.create_history("flowdeck test inputs")["id"]
    dataset_id = gi.tools.paste_content(INPUT_TEXT, history_id, file_type="txt")["outputs"][0]["id"]
    gi.datasets.wait_for_dataset(dataset_id, maxwait=120)
    spec = make_spec("flowdeck_sleep", {"seconds": 300}, galaxy_dataset_id=dataset_id)
    handle, _ = sync_until(backend, submit(backend, spec), task_running("sleep"))

    galaxy_server.stop()
    try:
        report = backend.sync([handle])[0]
        assert report.state is None, report
        assert "unreachable" in (report.transient_error or ""), report
        assert report.retry_after, report
    finally:
        galaxy_server.start()

    # Galaxy's local runner cannot adopt a job that ran while it was down: on start-up it
    # fails the job, and that is the run's true state.
    report = wait_terminal(backend, handle)
    assert report.state is State.EXECUTOR_ERROR, report
    assert "killed when Galaxy was restarted" in (report.reason or ""), report


def test_one_batch_reports_on_many_runs_and_an_unknown_invocation(
    backend: GalaxyBackend, make_spec: SpecMaker, tmp_path: Path
) -> None:
    handles = [submit(backend, make_spec("flowdeck_sort_upper")) for _ in range(2)]
    ghost = RunHandle("ghost", "0123456789abcdef", {}, tmp_path / "ghost", State.RUNNING)

    reports = {r.run_id: r for r in backend.sync([*handles, ghost])}

    assert set(reports) == {h.run_id for h in handles} | {"ghost"}
    assert reports["ghost"].state is State.SYSTEM_ERROR, reports["ghost"]
    for handle in handles:
        assert reports[handle.run_id].state in {State.INITIALIZING, State.RUNNING}, reports[handle.run_id]
        assert wait_terminal(backend, advance(handle, reports[handle.run_id])).state is State.COMPLETE


def test_an_unchanged_run_costs_no_detail_read(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    handle = submit(backend, make_spec("flowdeck_sort_upper"))
    report = wait_terminal(backend, handle)
    done = advance(handle, report)

    again = backend.sync([done])[0]

    assert again.state is None, again
    assert again.transient_error is None, again


@pytest.mark.parametrize(
    ("workflow", "params", "dataset", "message"),
    [
        ("no-such-workflow", {}, None, "no workflow named 'no-such-workflow'"),
        ("flowdeck_sort_upper", {"nope": 1}, None, "has no input 'nope'"),
        ("flowdeck_sort_upper", {}, {"galaxy_dataset_id": "0123456789abcdef"}, "unable to decode"),
    ],
)
def test_bad_submissions_carry_galaxys_message(
    backend: GalaxyBackend,
    make_spec: SpecMaker,
    workflow: str,
    params: dict[str, object],
    dataset: dict[str, str] | None,
    message: str,
) -> None:
    spec = make_spec(workflow, params, **(dataset or {}))
    with pytest.raises(EngineError, match=message):
        backend.submit(spec)


def test_missing_required_input_is_refused_by_galaxy(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    spec = make_spec("flowdeck_sort_upper")
    spec = type(spec)(**{**spec.__dict__, "dataset": None})
    with pytest.raises(EngineError, match="not optional and no input provided"):
        backend.submit(spec)


def test_unsupported_dataset_scheme_is_invalid_input(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    with pytest.raises(InvalidInput, match="cannot stage s3 URIs"):
        backend.validate(make_spec("flowdeck_sort_upper", uri="s3://bucket/fruit.tsv"))


def test_file_outside_the_data_folder_is_refused(backend: GalaxyBackend, make_spec: SpecMaker) -> None:
    with pytest.raises(EngineError, match="must lie under"):
        backend.submit(make_spec("flowdeck_sort_upper", uri="file:///etc/passwd"))


def test_wrong_api_key_is_a_clear_error_and_never_shown(
    galaxy_settings: Settings, make_spec: SpecMaker, backend: GalaxyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    key = "wrong-key-0123456789abcdef"
    bad = GalaxyBackend(galaxy_settings.model_copy(update={"galaxy_api_key": SecretStr(key)}))
    with pytest.raises(EngineError, match="refused flowdeck's API key") as refused:
        bad.submit(make_spec("flowdeck_sort_upper"))
    handle = submit(backend, make_spec("flowdeck_sort_upper"))

    report = bad.sync([handle])[0]

    assert report.state is None, report
    assert "API key" in (report.transient_error or ""), report
    assert key not in str(refused.value) + (report.transient_error or "") + caplog.text


def test_a_replaced_workflow_is_looked_up_again(
    backend: GalaxyBackend, galaxy_server: GalaxyServer, make_spec: SpecMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    gi = galaxy(galaxy_server)
    stale = backend.workflow("flowdeck_sleep")
    assert backend.workflow("flowdeck_sleep") is stale  # cached
    document = yaml.safe_load((WORKFLOWS / "sleep.gxwf.yml").read_text())
    fresh_id = gi.workflows.import_workflow_dict(document)["id"]
    gi.workflows.delete_workflow(stale.id)
    monkeypatch.setattr(galaxy_backend, "WORKFLOW_CACHE_SECONDS", 0.0)  # the cache has aged

    submitted = backend.submit(make_spec("flowdeck_sleep", {"seconds": 0}, file_type="txt"))

    assert submitted.backend_data["workflow_id"] == fresh_id
    assert backend.workflow("flowdeck_sleep").id == fresh_id
