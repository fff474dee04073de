"""Resuming a failed CWL run (``POST /jobs/{id}/rerun`` and the WES ``/runs/{id}/rerun`` with
``resume``) on cwltool (its step cache) and Toil (a restart from the old run's job store), with
the sandbox on: the rerun takes the first step's output as it was (not made again), runs the
failed step, completes, says which step it re-used, and leaves the old run's folder untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.backends.registry import Registry, load_class
from flowdeck.services.core.context import AppContext
from flowdeck.worker.loop import Worker
from tests.integration.test_engine_runs import TERMINAL, WES, follow

pytestmark = pytest.mark.engine

# ``first`` writes a value no second execution would repeat; ``second`` fails until the gate file
# exists: a transient failure fixed between the run and its resumed rerun, nothing else changed.
WORKFLOW = """
cwlVersion: v1.2
class: Workflow
inputs:
  gate: string
outputs:
  b: {type: File, outputSource: second/b}
steps:
  first:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, "date +%s%N > a.txt"]
      inputs: []
      outputs: {a: {type: File, outputBinding: {glob: a.txt}}}
    in: {}
    out: [a]
  second:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'cat "$0" > b.txt && test -e "$1"']
      inputs:
        a: {type: File, inputBinding: {position: 1}}
        gate: {type: string, inputBinding: {position: 2}}
      outputs: {b: {type: File, outputBinding: {glob: b.txt}}}
    in: {a: first/a, gate: gate}
    out: [b]
"""


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    """A folder outside the runs that their sandboxes may read: where the gate file appears."""
    folder = tmp_path / "gates"
    folder.mkdir()
    folder.chmod(0o755)
    return folder


@pytest.fixture
def cwl_services(services: AppContext, gates: Path) -> AppContext:
    services.settings.backends = ["demo", "cwltool", "toil"]
    services.settings.sandbox_read_only_paths = [*services.settings.sandbox_read_only_paths, gates]
    services.backends = Registry(services.settings)
    return services


async def _submit(api: httpx.AsyncClient, engine: str, gate: Path) -> str:
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "two.cwl",
        "workflow_engine": engine,
        "workflow_params": json.dumps({"gate": str(gate)}),
    }
    files = {"workflow_attachment": ("two.cwl", WORKFLOW.encode())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def _tasks(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    body = (await api.get(f"{WES}/runs/{run_id}/tasks")).json()
    return {task["name"]: task for task in body["task_logs"]}


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of a folder with its inode, size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


@pytest.mark.parametrize("engine", ["cwltool", "toil"])
async def test_a_resumed_cwl_rerun_re_uses_the_first_step_and_runs_the_failed_one(
    api: httpx.AsyncClient, cwl_services: AppContext, gates: Path, engine: str
) -> None:
    if not load_class(engine).available():
        pytest.skip(f"{engine} is not installed")
    gate = gates / "gate"
    worker = Worker(cwl_services)
    old = await _submit(api, engine, gate)
    assert await follow(api, worker, old, TERMINAL, seconds=240) == "EXECUTOR_ERROR"
    before = await _tasks(api, old)
    assert before["first"]["exit_code"] == 0
    assert before["second"]["exit_code"] != 0
    old_folder = cwl_services.runs_dir / old
    untouched = _snapshot(old_folder)

    gate.touch()  # the cause is fixed
    response = await api.post(f"{WES}/runs/{old}/rerun", json={"resume": True})  # the WES extension
    assert response.status_code == 200, response.text
    new = response.json()["run_id"]
    assert await follow(api, worker, new, TERMINAL, seconds=240) == "COMPLETE"

    after = await _tasks(api, new)
    assert "first (re-used)" in after
    assert "first" not in after  # not run again
    assert after["second"]["exit_code"] == 0
    # second read the first run's value: first's output is the old one, not made again
    first_value = next(old_folder.glob("**/a.txt")).read_text()
    outputs = (await api.get(f"{WES}/runs/{new}/outputs")).json()["files"]
    b_txt = next(cwl_services.runs_dir.glob(f"{new}/**/outputs/b.txt"))
    assert b_txt.read_text() == first_value
    assert {Path(f["name"]).name for f in outputs} == {"b.txt"}
    assert _snapshot(old_folder) == untouched  # the rerun wrote nothing into the old run's folder
    run = (await api.get(f"/jobs/{new}")).json()
    assert run["rerun_of"] == old
    created = (await api.get(f"/jobs/{new}/events")).json()["events"][0]
    assert f"resumes run {old}" in created["reason"]
