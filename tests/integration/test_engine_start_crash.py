"""A worker killed while starting an engine: the next one never starts it a second time.

The window is real: the starting worker is a separate Python whose atomic write of
``launch.json`` is made to block (a FIFO where its temporary file goes) after the engine
has started, and it is SIGKILLed there. The takeover must find the run started (the
launcher holds the start lock, and records itself in ``engine.json``) and follow that
engine; a run whose starter died before starting anything is started once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowdeck.backends.local.launcher import LaunchPlan, ProcessStatus, control_dir, launch, status
from flowdeck.backends.local.procfs import is_alive
from flowdeck.backends.local.records import read_json

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.support.warm_probe"
STARTER = """
import sys
from pathlib import Path
from flowdeck.backends.local.launcher import launch
from tests.integration.test_engine_start_crash import plan_for
launch(Path(sys.argv[1]), plan_for(sys.argv[2] or None))
"""


def plan_for(warm: str | None) -> LaunchPlan:
    """Two seconds of work that says once on its stdout that it started."""
    if warm:
        return LaunchPlan(["probe", "sleep", "2"], warm=warm)
    return LaunchPlan([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(2)"])


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def wait_for(check: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not callable(check) or not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_end(rundir: Path) -> ProcessStatus:
    wait_for(lambda: status(rundir).exit_code is not None, "the run's end")
    return status(rundir)


def starts(rundir: Path) -> int:
    """How many engines ran in the folder (each says so once on stdout)."""
    text = (control_dir(rundir) / "stdout.txt").read_text()
    return sum(1 for line in text.splitlines() if line.startswith(("started", "{")))


@pytest.mark.parametrize("warm", [None, PROBE])
def test_a_worker_killed_after_the_start_and_before_its_record_starts_nothing_twice(
    warm: str | None, tmp_path: Path
) -> None:
    rundir = tmp_path / "run"
    control_dir(rundir).mkdir(parents=True)
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(rundir), warm or ""], cwd=ROOT)
    # Its write of launch.json blocks here: the engine has started, its record is not written.
    os.mkfifo(control_dir(rundir) / f".launch.json.{starter.pid}.tmp")
    wait_for(lambda: read_json(control_dir(rundir) / "engine.json") is not None, "the first launcher")
    assert starter.poll() is None
    assert not (control_dir(rundir) / "launch.json").exists()
    first = (read_json(control_dir(rundir) / "engine.json") or {})["launcher"]
    starter.kill()
    starter.wait()

    record = launch(rundir, plan_for(warm))  # the takeover, as the next worker's submit does

    assert (record["pid"], record["start_ticks"]) == (first["pid"], first["start_ticks"])
    assert is_alive(record["pid"], record["start_ticks"]) or status(rundir).exit_code is not None
    assert wait_end(rundir).exit_code == 0
    assert starts(rundir) == 1
    assert read_json(control_dir(rundir) / "launch.json") == record


def test_a_start_whose_worker_died_before_anything_started_is_started_once(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    control_dir(rundir).mkdir(parents=True)
    # What a worker killed before the start leaves: the lock file, free, and no record.
    (control_dir(rundir) / "launch.lock").touch()
    record = launch(rundir, plan_for(None))
    assert launch(rundir, plan_for(None)) == record
    assert wait_end(rundir).exit_code == 0
    assert starts(rundir) == 1
