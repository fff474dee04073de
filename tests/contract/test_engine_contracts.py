"""The backend contract, for real, on cwltool, Snakemake, miniwdl and Toil.

Each engine runs the two-step workflow under ``tests/workflows/<engine>/``
(greet, then shout; ``fail`` makes shout exit 3, ``sleep_seconds`` makes it
long). An engine's tests are skipped only when its package is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.procfs import group_pids
from flowdeck.backends.local.records import read_json
from flowdeck.backends.registry import load_class
from flowdeck.domain.runs import RunHandle, RunSpec
from flowdeck.domain.states import State
from flowdeck.settings import Settings
from tests.contract import contract

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
# backend -> (workflow folder, workflow file, workflow type, version, name of the second step)
ENGINES: dict[str, tuple[str, str, str, str, str]] = {
    "cwltool": ("cwl", "two_step.cwl", "CWL", "v1.2", "shout"),
    "snakemake": ("snakemake", "Snakefile", "SMK", "9", "shout"),
    "miniwdl": ("wdl", "two_step.wdl", "WDL", "1.0", "shout"),
    "toil": ("cwl", "two_step.cwl", "CWL", "v1.2", "shout"),
}

pytestmark = pytest.mark.engine


def backend_class(name: str) -> type[LocalEngineBackend]:
    cls = load_class(name)
    assert issubclass(cls, LocalEngineBackend)
    if not cls.available():
        pytest.skip(f"{name} is not installed (pip install -e '.[engines]')")
    return cls


def run_processes(handle: RunHandle) -> list[int]:
    """Live processes of a run: its process group, and anything whose cwd is in its dir."""
    launch = read_json(control_dir(handle.workdir) / "launch.json") or {}
    found = set(group_pids(int(launch["pid"]))) if "pid" in launch else set()
    root = handle.workdir.resolve()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if cwd.is_relative_to(root) and state != "Z":
                found.add(int(entry.name))
    return sorted(found)


def make_subject(name: str, tmp_path: Path, **overrides: Any) -> tuple[contract.Subject, Settings]:
    cls = backend_class(name)
    folder, workflow, wf_type, version, _ = ENGINES[name]
    settings = Settings(data_dir=tmp_path / "data", **overrides)

    def make_spec(run_id: str, params: dict[str, Any], engine: dict[str, str]) -> RunSpec:
        return RunSpec(
            run_id=run_id,
            workflow_type=wf_type,
            workflow_type_version=version,
            workflow_url=workflow,
            workflow_params=params,
            workdir=tmp_path / "runs" / run_id,
            attachments_dir=WORKFLOWS / folder,
            engine_parameters=engine,
        )

    subject = contract.Subject(
        make_backend=lambda: cls(settings),
        make_spec=make_spec,
        ok_params={"message": "hello flowdeck"},
        fail_params={"message": "hello flowdeck", "fail": True},
        long_params={"message": "hello flowdeck", "sleep_seconds": 300},
        processes=run_processes,
        timeout=120,
    )
    return subject, settings


@pytest.mark.parametrize("name", list(ENGINES))
def test_run_to_complete(name: str, tmp_path: Path) -> None:
    subject, _ = make_subject(name, tmp_path)
    report = contract.run_to_complete(subject)
    assert [task.name for task in report.tasks or []][:2] == ["greet", "shout"]
    shouted = [f for f in report.output_files or [] if f.name.endswith("shouted.txt")]
    assert len(shouted) == 1
    assert Path(shouted[0].location).read_text() == "HELLO FLOWDECK\n"
    assert all(task.start_time and task.end_time and task.exit_code == 0 for task in report.tasks or [])


@pytest.mark.parametrize("warm", [True, False])
def test_cwltool_warm_and_cold_starts(warm: bool, tmp_path: Path) -> None:
    """Runs fork from a warm cwltool by default; with warm_starts off the command starts cold."""
    subject, _ = make_subject("cwltool", tmp_path, warm_starts=warm)
    report = contract.run_to_complete(subject)
    assert [task.name for task in report.tasks or []][:2] == ["greet", "shout"]
    launch = read_json(control_dir(tmp_path / "runs" / "ok") / "launch.json") or {}
    assert ("warm" in launch) is warm
    contract.cancel_long_step(subject, running_task="shout")


@pytest.mark.parametrize("name", list(ENGINES))
def test_failing_step(name: str, tmp_path: Path) -> None:
    subject, _ = make_subject(name, tmp_path)
    report = contract.failing_step(subject, stderr_text="shout failed on purpose")
    failed = [task for task in report.tasks or [] if task.state is State.EXECUTOR_ERROR]
    assert [task.name for task in failed] == ["shout"]
    assert "shout" in (report.reason or "")


@pytest.mark.parametrize("name", list(ENGINES))
def test_cancel_long_step(name: str, tmp_path: Path) -> None:
    subject, _ = make_subject(name, tmp_path)
    contract.cancel_long_step(subject, running_task=ENGINES[name][4])


@pytest.mark.parametrize("name", list(ENGINES))
def test_unknown_handle(name: str, tmp_path: Path) -> None:
    subject, _ = make_subject(name, tmp_path)
    contract.unknown_handle(subject, tmp_path)


@pytest.mark.parametrize("name", ["cwltool", "snakemake", "miniwdl"])
def test_worker_killed_run_reaches_its_end(name: str, tmp_path: Path) -> None:
    subject, settings = make_subject(name, tmp_path)
    contract.worker_killed(subject, name, settings.model_dump_json())


def test_vanished_run_is_a_system_error(tmp_path: Path) -> None:
    # The launcher logic is shared: one fast engine shows it.
    subject, _ = make_subject("miniwdl", tmp_path)
    contract.vanished(subject)


def test_submit_is_idempotent(tmp_path: Path) -> None:
    subject, _ = make_subject("miniwdl", tmp_path)
    backend = subject.make_backend()
    spec = subject.make_spec("twice", subject.ok_params, {})
    first, second = backend.submit(spec), backend.submit(spec)
    assert first.backend_run_id == second.backend_run_id
    handle = RunHandle(spec.run_id, first.backend_run_id, first.backend_data, spec.workdir, State.RUNNING)
    assert contract.wait_done(backend, handle, 60).state is State.COMPLETE


def test_toil_writes_nothing_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Toil's ~/.toil (default.yaml, history.sqlite) stays out of the service account's home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    subject, _ = make_subject("toil", tmp_path)
    contract.run_to_complete(subject, "home")
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == []
    # Nor a per-run history database: flowdeck's database is the record of runs.
    assert list((tmp_path / "runs" / "home").rglob("history.sqlite")) == []
