"""The two ways of entering a sandbox from a forked process give the engine the same sandbox.

Warm starts spawn the PID namespace's init (``sandbox.spawn_init``, then the engine confines
itself: ``sandbox.enter_engine``); containers' cold starts fork it (``sandbox.enter``: the
init confines itself and forks the engine). The engine looks at what it sees from inside
(user, namespaces, mounts, limits, the service's files, its fellow processes) both ways and
the two views must be equal, save for one: the spawned init is root and outside the run's
mounts, so the run may not even signal it. And either way the namespace ends with the
engine, taking along what the engine left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local import sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="entering a sandbox from a fork needs root")

SECRET = "service-secret-5d1e"
# A leftover the engine starts and leaves behind; unique, so the test can look for it.
LEFTOVER = ["sleep", "61.7243"]


@pytest.fixture
def plan(tmp_path: Path) -> dict[str, Any]:
    """A run folder and its plan, beside a service file the run must not see."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret").write_text(SECRET)
    rundir = tmp_path / "run"
    control = rundir / ".flowdeck"
    control.mkdir(parents=True)
    tmp_path.chmod(0o755)
    uid, gid = sandbox.user_ids("nobody")
    sandbox.write_identity(control, uid, gid)
    limits = {"memory_mb": 4096, "cpu_seconds": 300, "file_mb": 64, "nproc": 0}
    return sandbox.make_plan(rundir, [], [], (uid, gid), network=False, limits=limits)


def _view(secret: Path) -> dict[str, Any]:
    """What the engine sees from inside, and what it may do to pid 1."""
    ns = {name: os.readlink(f"/proc/self/ns/{name}") for name in ("mnt", "ipc", "uts", "net", "pid")}
    status = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines())
    mounts = sorted(" ".join(line.split()[4:6]) for line in Path("/proc/self/mountinfo").read_text().splitlines())
    view: dict[str, Any] = {
        "pid": os.getpid(),
        "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
        "new namespaces": sorted(name for name, link in ns.items() if link != _HOST_NS[name]),
        "hostname": os.uname().nodename,
        "mounts": mounts,
        "limits": [
            resource.getrlimit(kind) for kind in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE)
        ],
        "no_new_privs": status["NoNewPrivs"].strip(),
        "capabilities": status["CapEff"].strip(),
        "processes": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
        "secret": _attempt(lambda: secret.read_text()),
        "cwd": os.getcwd(),
    }
    view["pid 1"] = {
        "signal": _attempt(lambda: os.kill(1, signal.SIGKILL)),
        "root": _attempt(lambda: os.listdir("/proc/1/root")),
        "environ": _attempt(lambda: Path("/proc/1/environ").read_bytes()),
    }
    subprocess.Popen(LEFTOVER, start_new_session=True)
    return view


def _attempt(action: Any) -> str:
    try:
        action()
    except OSError as exc:
        return type(exc).__name__
    return "allowed"


_HOST_NS = {name: os.readlink(f"/proc/self/ns/{name}") for name in ("mnt", "ipc", "uts", "net", "pid")}


def _engine(plan: dict[str, Any], secret: Path, out: int, enter: Any) -> None:
    """In the process that becomes the engine: enter, report the view, end."""
    code = 0
    try:
        enter(plan)
        os.write(out, json.dumps(_view(secret)).encode())
    except BaseException as exc:  # the child must never return into pytest
        os.write(out, json.dumps({"error": repr(exc)}).encode())
        code = 1
    os._exit(code)


def _launcher(way: str, plan: dict[str, Any], secret: Path, out: int) -> None:
    """In a fork of the test process, as a warm start's launcher-to-be: the namespace, the engine."""
    if way == "forked":
        sandbox.new_pid_namespace()
        if os.fork() == 0:
            _engine(plan, secret, out, sandbox.enter)  # enter returns in the engine only
    else:
        alive = sandbox.spawn_init()
        if os.fork() == 0:
            _engine(plan, secret, out, sandbox.enter_engine)
        os.close(alive)
    os._exit(_reap_all())


def _reap_all() -> int:
    """Reap the engine (or the forked init), then the spawned init once the engine is gone;
    1 if something outlived the engine by seconds (killed then)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            return 0
        if time.monotonic() > deadline:
            children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
            for pid in children:
                os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-1, 0)
            return 1


def enter_and_look(way: str, plan: dict[str, Any], secret: Path) -> dict[str, Any]:
    """The engine's view of its sandbox, entered ``way``; returns once the namespace is gone."""
    ready, out = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready)
        _launcher(way, plan, secret, out)
    os.close(out)
    with os.fdopen(ready, "rb") as reader:
        answer = reader.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the namespace's init outlived the engine"
    view: dict[str, Any] = json.loads(answer)
    assert "error" not in view, view
    return view


@pytest.fixture
def no_leftover() -> Iterator[None]:
    yield
    left = subprocess.run(["pgrep", "-f", " ".join(LEFTOVER)], capture_output=True, text=True, check=False)
    with contextlib.suppress(ValueError, ProcessLookupError):
        for pid in left.stdout.split():
            os.kill(int(pid), signal.SIGKILL)
    assert not left.stdout, "a process the engine left behind outlived its sandbox"


def test_spawned_and_forked_inits_make_the_same_sandbox(
    plan: dict[str, Any], tmp_path: Path, no_leftover: None
) -> None:
    secret = tmp_path / "data" / "secret"
    forked = enter_and_look("forked", plan, secret)
    spawned = enter_and_look("spawned", plan, secret)
    # What differs: the forked init is the run's user (the engine may signal it, to no
    # effect: pid 1 of its namespace), the spawned one root. Neither can be traced: the forked
    # one changed its user, so it is not dumpable; the spawned one is another user's.
    assert forked.pop("pid 1") == {"signal": "allowed", "root": "PermissionError", "environ": "PermissionError"}
    assert spawned.pop("pid 1") == {
        "signal": "PermissionError",
        "root": "PermissionError",
        "environ": "PermissionError",
    }
    assert spawned["pid"] == 2
    assert spawned["processes"] == [1, 2]
    # Only the init and the engine are in view; the forked way's engine number may differ (2 or 3:
    # the forked init's own start can take a pid of the namespace first), no property of a sandbox.
    for seen in (forked, spawned):
        engine_pid = seen.pop("pid")
        assert seen.pop("processes") == [1, engine_pid]
    assert spawned == forked
    # ... and what both give the engine: its own namespaces, the run's user, nothing else.
    assert spawned["new namespaces"] == ["ipc", "mnt", "net", "pid", "uts"]
    assert spawned["ids"][0] == [plan["uid"]] * 3
    assert spawned["ids"][2] == []
    assert spawned["secret"] == "FileNotFoundError"
    assert spawned["cwd"] == plan["rundir"]
    assert spawned["no_new_privs"] == "1"
    assert int(spawned["capabilities"], 16) == 0
    assert spawned["limits"][2] == [64 * 1024 * 1024] * 2
