"""Warm starts: runs forked from a warm server keep every promise of the cold launcher.

The engine here is ``tests/support/warm_probe.py``: it prints what its process
sees, so each test checks one promise directly; the real cwltool runs warm in
tests/contract/test_engine_contracts.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local import warm_start
from flowdeck.backends.local.launcher import (
    LaunchPlan,
    ProcessStatus,
    control_dir,
    launch,
    request_cancel,
    status,
    subscribe_exits,
)
from flowdeck.backends.local.procfs import group_pids, is_alive, start_ticks
from flowdeck.backends.local.records import read_json

PROBE = "tests.support.warm_probe"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def importable_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm server is a new Python: it finds the probe through PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def start(rundir: Path, *action: str, marker: str = "", warm: str = PROBE, **plan: Any) -> dict[str, Any]:
    env = {"PROBE_MARKER": marker, "TMPDIR": str(rundir / "tmp")}
    (rundir / "tmp").mkdir(parents=True, exist_ok=True)
    return launch(rundir, LaunchPlan(["probe", *action], env, warm=warm, **plan), key=rundir.name)


def wait_end(rundir: Path, seconds: float = 30) -> ProcessStatus:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = status(rundir)
        if current.launched and not current.running and current.exit_code is not None:
            return current
        time.sleep(0.05)
    raise AssertionError(f"{rundir} did not end: {status(rundir)}")


def seen(rundir: Path) -> dict[str, Any]:
    first = (control_dir(rundir) / "stdout.txt").read_text().splitlines()[0]
    data = json.loads(first)
    assert isinstance(data, dict)
    return data


def live_in(rundir: Path) -> list[int]:
    """Live processes whose working folder is the run's."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == rundir and start_ticks(int(entry.name)) is not None:
                found.append(int(entry.name))
    return found


def test_a_run_has_its_own_session_folder_environment_and_signals(tmp_path: Path) -> None:
    rundir = tmp_path / "one"
    record = start(rundir, marker="one")
    ended = wait_end(rundir)
    assert ended.exit_code == 0
    assert not ended.canceled
    assert record["warm"] == PROBE
    probe = seen(rundir)
    launcher = int(record["pid"])
    assert probe["ppid"] == launcher
    assert probe["sid"] == launcher
    assert probe["cwd"] == str(rundir)
    assert probe["marker"] == "one"
    assert probe["tmp"] == str(rundir / "tmp")  # not the temp dir the server cached at preload
    assert probe["sigterm_default"]
    assert probe["blocked"] == []
    engine = read_json(control_dir(rundir) / "engine.json") or {}
    assert engine["pid"] == probe["pid"]
    assert engine["start_ticks"] is not None
    assert engine["launcher"]["pid"] == launcher


def test_runs_share_nothing_in_memory(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        start(tmp_path / name, marker=name)
    for name in ("a", "b", "c"):
        assert wait_end(tmp_path / name).exit_code == 0
        probe = seen(tmp_path / name)
        assert probe["marker"] == name
        assert probe["state"] == {"preloaded": 1, "runs": 1}


def test_the_engine_exit_code_is_recorded(tmp_path: Path) -> None:
    start(tmp_path / "fails", "exit", "3")
    ended = wait_end(tmp_path / "fails")
    assert ended.exit_code == 3
    assert ended.start_error is None


def test_a_cancel_stops_the_whole_run(tmp_path: Path) -> None:
    rundir = tmp_path / "long"
    record = start(rundir, "sleep", "300", cancel_signal=signal.SIGTERM, cancel_group=True, grace_seconds=5)
    deadline = time.monotonic() + 20
    while not (control_dir(rundir) / "engine.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request_cancel(rundir) is False
    ended = wait_end(rundir)
    assert ended.canceled
    assert ended.exit_code == -signal.SIGTERM
    assert group_pids(int(record["pid"])) == []
    assert live_in(rundir) == []


def test_what_the_engine_left_behind_is_swept(tmp_path: Path) -> None:
    rundir = tmp_path / "orphan"
    start(rundir, "child")
    assert wait_end(rundir).exit_code == 0
    assert "left a child behind" in (control_dir(rundir) / "stderr.txt").read_text()
    assert live_in(rundir) == []


def test_listeners_hear_of_a_warm_run_ending(tmp_path: Path) -> None:
    heard = threading.Event()
    unsubscribe = subscribe_exits(lambda key: heard.set() if key == "told" else None)
    try:
        start(tmp_path / "told")
        assert heard.wait(30)
        assert status(tmp_path / "told").exit_code == 0
    finally:
        unsubscribe()


def test_a_dead_server_is_started_again(tmp_path: Path) -> None:
    start(tmp_path / "before")
    wait_end(tmp_path / "before")
    server = warm_start.server_for(PROBE)
    old = server.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid() == old and time.monotonic() < deadline:
        time.sleep(0.05)
    record = start(tmp_path / "after")
    assert record.get("warm") == PROBE
    assert server.pid() not in (None, old)
    assert wait_end(tmp_path / "after").exit_code == 0


def test_a_server_that_cannot_start_means_a_cold_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the server's socket folder goes
    rundir = tmp_path / "cold"
    plan = LaunchPlan([sys.executable, "-c", "print('started cold')"], warm="tests.support.no_such_engine")
    record = launch(rundir, plan)
    assert "warm" not in record
    assert list(tmp_path.glob("flowdeck-warm-*")) == []  # the failed server's folder is gone
    assert wait_end(rundir).exit_code == 0
    assert (control_dir(rundir) / "stdout.txt").read_text() == "started cold\n"


OWNER = """
import sys, time
from pathlib import Path
from flowdeck.backends.local import warm_start
from flowdeck.backends.local.launcher import LaunchPlan, launch
rundir = Path(sys.argv[1])
(rundir / "tmp").mkdir(parents=True)
launch(rundir, LaunchPlan(["probe", "sleep", "2"], {"TMPDIR": str(rundir / "tmp")}, warm="tests.support.warm_probe"))
print(warm_start.server_for("tests.support.warm_probe").pid(), flush=True)
time.sleep(600)
"""


def test_the_server_ends_with_its_owner_and_the_run_goes_on(tmp_path: Path) -> None:
    rundir = tmp_path / "owned"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(rundir)], stdout=subprocess.PIPE, cwd=ROOT)
    assert owner.stdout is not None
    server = int(owner.stdout.readline())
    ticks = start_ticks(server)
    socket_path = Path(Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")[3].decode())
    assert socket_path.exists()
    owner.kill()  # SIGKILL: the owner can do nothing about it
    owner.wait()
    owner.stdout.close()
    deadline = time.monotonic() + 10
    while is_alive(server, ticks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(server, ticks)
    assert not socket_path.parent.exists()  # the server cleared its socket folder
    assert wait_end(rundir).exit_code == 0


@pytest.mark.parametrize("warm", [PROBE, None])
def test_the_engine_does_not_inherit_flowdeck_settings(
    warm: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow's commands read what they inherit: the service's secrets stay with the service."""
    monkeypatch.setenv("FLOWDECK_DATABASE_URL", "postgresql://flowdeck:secret@db/flowdeck")
    monkeypatch.setenv("FLOWDECK_GALAXY_API_KEY", "secret")
    rundir = tmp_path / ("warm" if warm else "cold")
    show = "import json, os; print(json.dumps(sorted(n for n in os.environ if n.startswith('FLOWDECK'))))"
    argv = ["probe"] if warm else [sys.executable, "-c", show]
    launch(rundir, LaunchPlan(argv, {"PROBE_MARKER": "kept"}, warm=warm))
    assert wait_end(rundir).exit_code == 0
    if warm:
        probe = seen(rundir)
        assert probe["flowdeck_vars"] == []
        assert probe["marker"] == "kept"
    else:
        assert json.loads((control_dir(rundir) / "stdout.txt").read_text()) == []
