"""Resuming a failed run (``POST /jobs/{id}/rerun`` with ``resume``): the rerun re-uses the
finished steps of the old run (the same file, not a copy made by running the step again), runs
the rest, and says which steps it re-used; an engine that cannot resume, or a run still going,
is refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.backends.registry import Registry
from flowdeck.services.core.context import AppContext
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import TERMINAL, WES, follow

pytestmark = pytest.mark.engine

# ``second`` fails until the gate file exists: a transient failure (a full disk, a lost node)
# fixed between the run and its resumed rerun, with the workflow and parameters unchanged.
SNAKEFILE = """
rule all:
    input: "b.txt"

rule first:
    output: "a.txt"
    shell: "echo made once > {output}"

rule second:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output} && test -e {config[gate]}"
"""


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    """A folder outside the runs that their sandboxes may read: where the gate file appears."""
    folder = tmp_path / "gates"
    folder.mkdir()
    folder.chmod(0o755)
    return folder


@pytest.fixture
def smk_services(services: AppContext, gates: Path) -> AppContext:
    services.settings.backends = ["demo", "snakemake", "cwltool", "miniwdl"]
    services.settings.sandbox_read_only_paths = [*services.settings.sandbox_read_only_paths, gates]
    services.backends = Registry(services.settings)
    return services


async def _submit(api: httpx.AsyncClient, gate: Path) -> str:
    form = {
        "workflow_type": "SMK",
        "workflow_type_version": "9",
        "workflow_url": "Snakefile",
        "workflow_params": json.dumps({"gate": str(gate)}),
    }
    files = {"workflow_attachment": ("Snakefile", SNAKEFILE.encode())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def _tasks(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    body = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()
    return {task["name"]: task for task in body["task_logs"]}


def _file(services: AppContext, run_id: str, name: str) -> Path:
    return next((services.runs_dir).glob(f"**/{run_id}/**/{name}"))


async def test_a_resumed_rerun_re_uses_the_finished_step_and_runs_the_failed_one(
    api: httpx.AsyncClient, smk_services: AppContext, gates: Path
) -> None:
    gate = gates / "gate"
    worker = Worker(smk_services)
    old = await _submit(api, gate)
    assert await follow(api, worker, old, TERMINAL, seconds=180) == "EXECUTOR_ERROR"
    before = await _tasks(api, old)
    assert before["first"]["exit_code"] == 0
    assert before["second"]["exit_code"] != 0

    gate.touch()  # the cause is fixed
    response = await api.post(f"/jobs/{old}/rerun", json={"resume": True})
    assert response.status_code in (201, 202), response.text
    new = response.json()["id"]
    assert response.json()["rerun_of"] == old
    assert await follow(api, worker, new, TERMINAL, seconds=180) == "COMPLETE"

    after = await _tasks(api, new)
    assert "first (re-used)" in after
    assert "first" not in after  # not run again
    assert after["second"]["exit_code"] == 0
    reused, original = _file(smk_services, new, "a.txt"), _file(smk_services, old, "a.txt")
    assert reused.stat().st_ino == original.stat().st_ino
    assert _file(smk_services, new, "b.txt").read_text() == "made once\n"
    names = {f["name"] for f in (await api.get(f"{WES}/runs/{new}/outputs")).json()["files"]}
    assert {"a.txt", "b.txt"} <= {Path(n).name for n in names}
    created = (await api.get(f"/jobs/{new}/events")).json()["events"][0]
    assert f"resumes run {old}" in created["reason"]


async def test_a_plain_rerun_runs_every_step_again(
    api: httpx.AsyncClient, smk_services: AppContext, gates: Path
) -> None:
    gate = gates / "gate"
    gate.touch()
    worker = Worker(smk_services)
    old = await _submit(api, gate)
    assert await follow(api, worker, old, TERMINAL, seconds=180) == "COMPLETE"
    response = await api.post(f"/jobs/{old}/rerun")  # no body: as before, nothing re-used
    assert response.status_code in (201, 202), response.text
    new = response.json()["id"]
    assert await follow(api, worker, new, TERMINAL, seconds=180) == "COMPLETE"
    assert {"first", "second"} <= set(await _tasks(api, new))
    assert _file(smk_services, new, "a.txt").stat().st_ino != _file(smk_services, old, "a.txt").stat().st_ino


WDL = """version 1.0
workflow hello {
  call say
}
task say {
  command <<< echo hi >>>
}
"""


async def test_resume_is_refused_for_a_run_still_going_and_an_engine_that_cannot(
    api: httpx.AsyncClient, smk_services: AppContext, gates: Path
) -> None:
    running = await _submit(api, gates / "gate")  # queued: not ended
    refused = await api.post(f"/jobs/{running}/rerun", json={"resume": True})
    assert refused.status_code == 409
    assert "only an ended run can be resumed" in refused.json()["detail"]
    await api.post(f"{WES}/runs/{running}/cancel")
    assert await follow(api, Worker(smk_services), running, TERMINAL, seconds=60) == "CANCELED"

    # miniwdl's call cache keys inputs by their absolute paths (another run folder, another key)
    # and hands out the old run's files in place: no resume there, refused before anything runs.
    form = {"workflow_type": "WDL", "workflow_type_version": "1.0", "workflow_url": "hello.wdl"}
    wdl = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("hello.wdl", WDL.encode())})
    assert wdl.status_code == 200, wdl.text
    job = wdl.json()["run_id"]
    await api.post(f"{WES}/runs/{job}/cancel")
    assert await follow(api, Worker(smk_services), job, TERMINAL, seconds=60) == "CANCELED"
    count = len((await api.get(f"{WES}/runs")).json()["runs"])
    refused = await api.post(f"/jobs/{job}/rerun", json={"resume": True})
    assert refused.status_code == 422
    assert "miniwdl cannot re-use the finished steps" in refused.json()["detail"]
    assert "engines that can: cwltool, snakemake" in refused.json()["detail"]
    on_wes = await api.post(f"{WES}/runs/{job}/rerun", json={"resume": True})
    assert on_wes.status_code == 400  # WES documents no 422: its ErrorResponse with 400
    assert "miniwdl cannot re-use" in on_wes.json()["msg"]
    assert len((await api.get(f"{WES}/runs")).json()["runs"]) == count  # nothing was created
    assert (await api.post(f"/jobs/{job}/rerun", json={"resume": "yes"})).status_code == 422
    assert (await api.post(f"/jobs/{job}/rerun", json={"resum": True})).status_code == 422
