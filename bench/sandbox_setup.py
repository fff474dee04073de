"""Where a warm sandbox's set-up time goes (root only): the phases of entering it.

    sudo .venv/bin/python bench/sandbox_setup.py            # 30 sandboxes each way, a 60 MB heap
    sudo .venv/bin/python bench/sandbox_setup.py --runs 10 --heap-mb 0 --init spawned

Both ways of making the run's PID namespace are measured side by side, alternating: its
init spawned (``sandbox.spawn_init``: vfork and exec of a small program; the engine,
pid 2, confines itself with ``sandbox.enter_engine``), as warm starts do now, or forked
from the warm process (``sandbox.enter``: pid 1 confines itself and forks the engine),
as they did before.

Each sandbox is made as a warm start makes it: the worker builds the plan
(``LocalEngineBackend.sandboxed``), a fork of this process (the launcher-to-be) makes the
PID namespace and its init, and the process that confines itself (the engine or, forked,
the init) unshares the rest, builds the root (mounts, pivot_root) and takes the sandbox
user; the engine exits at once. This process holds a heap of ``--heap-mb`` like a warm
cwltool's (~60 MB), because forking it is part of the cost. Wall times are medians per phase;
"CPU" is user + system seconds of the whole tree (from wait4), steadier under load than wall
time; the kernel's deferred work (freeing the namespaces) is in neither.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowdeck.backends.cwltool import CwltoolBackend
from flowdeck.backends.local import sandbox
from flowdeck.backends.local.launcher import LaunchPlan, control_dir
from flowdeck.domain.runs import RunSpec
from flowdeck.settings import Settings

PHASES = ("start init", "unshare", "build root", "limits + user", "fork engine")


def _confine(plan: dict[str, object], marks: list[float]) -> None:
    """enter's steps (unshare, root, limits and user), each timed into ``marks``."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = sandbox._CLONE_NEWNS | sandbox._CLONE_NEWIPC | sandbox._CLONE_NEWUTS
    sandbox._check(libc.unshare(flags | (0 if plan["network"] else sandbox._CLONE_NEWNET)), "unshare")
    marks.append(time.perf_counter())
    sandbox._build_root(libc, plan)
    marks.append(time.perf_counter())
    sandbox.set_limits(plan["limits"])  # type: ignore[arg-type]
    os.setgroups([])
    os.setresgid(plan["gid"], plan["gid"], plan["gid"])  # type: ignore[arg-type]
    os.setresuid(plan["uid"], plan["uid"], plan["uid"])  # type: ignore[arg-type]
    marks.append(time.perf_counter())


def _forked(plan: dict[str, object], out: int) -> None:
    """The init forked from the warm process (sandbox.enter, as before): pid 1 confines itself
    and forks the engine."""
    began = time.perf_counter()
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return
    marks = [began, time.perf_counter()]
    _confine(plan, marks)
    ready, tell = os.pipe()
    engine = os.fork()
    if engine == 0:
        os.write(tell, str(time.perf_counter()).encode())
        os._exit(0)
    marks.append(float(os.read(ready, 64)))
    os.waitpid(engine, 0)
    os.write(out, json.dumps([b - a for a, b in itertools.pairwise(marks)]).encode())
    os._exit(0)


def _spawned(plan: dict[str, object], out: int) -> None:
    """The init spawned (sandbox.spawn_init, warm starts now): the engine, pid 2, confines itself."""
    began = time.perf_counter()
    alive = sandbox.spawn_init()
    spawned = time.perf_counter()
    engine = os.fork()
    if engine == 0:
        marks = [began, spawned, time.perf_counter()]
        _confine(plan, marks)
        phases = [b - a for a, b in itertools.pairwise(marks)]
        # the same order as the forked init's: start init, unshare, root, user, fork engine
        os.write(out, json.dumps([phases[0], *phases[2:], phases[1]]).encode())
        os._exit(0)
    os.close(alive)
    with contextlib.suppress(ChildProcessError):
        while True:  # the engine, then the init once the engine's end closed its pipe
            os.waitpid(-1, 0)


def one(backend: CwltoolBackend, work: Path, name: str, network: bool, init: str) -> list[float]:
    """Seconds of: the worker's plan, each phase, the whole namespace, and CPU of the tree."""
    folder = work / name
    (folder / "attachments").mkdir(parents=True)
    spec = RunSpec(
        run_id=name,
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="echo.cwl",
        workflow_params={},
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )
    control_dir(spec.workdir).mkdir(parents=True)
    started = time.perf_counter()
    plan = backend.sandboxed(LaunchPlan(["true"], {}, signal.SIGTERM), spec, spec.workdir).sandbox or {}
    plan["network"] = network
    planned = time.perf_counter()
    ready, tell = os.pipe()
    child = os.fork()
    if child == 0:  # the run's launcher-to-be, a fork of the warm process
        if init == "forked":
            sandbox.new_pid_namespace()
            _forked(plan, tell)
        else:
            _spawned(plan, tell)
        os._exit(0)
    _, _, usage = os.wait4(child, 0)
    whole = time.perf_counter() - planned
    os.close(tell)
    phases = json.loads(os.read(ready, 4096))
    os.close(ready)
    return [planned - started, *phases, whole, usage.ru_utime + usage.ru_stime]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--heap-mb", type=int, default=60)
    parser.add_argument("--network", action="store_true", help="sandboxes with the network (no network namespace)")
    parser.add_argument(
        "--init",
        choices=("spawned", "forked", "both"),
        default="both",
        help="the namespace's init spawned (warm starts now) or forked from the warm process (before); "
        "both: alternate them, run by run",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("warm sandboxes need root: run this as root")
    heap = [bytearray(os.urandom(1024 * 1024)) for _ in range(args.heap_mb)]  # written: really resident
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-sandbox-setup-") as tmp:
        backend = CwltoolBackend(Settings(data_dir=Path(tmp) / "data"))
        inits = ("spawned", "forked") if args.init == "both" else (args.init,)
        rows = {init: [] for init in inits}  # type: dict[str, list[list[float]]]
        for n in range(args.runs):
            for init in inits:
                rows[init].append(one(backend, Path(tmp), f"r{n}-{init}", args.network, init))
    names = ("plan (worker)", *PHASES, "fork → reaped (whole sandbox)", "CPU of the tree")
    network = "with the network" if args.network else "without network (a network namespace each)"
    print(f"{args.runs} sandboxes each {network}, heap {len(heap)} MB, load average {os.getloadavg()[0]:.1f}")
    print("| median | " + " | ".join(f"init {init}" for init in inits) + " |")
    print("|---|" + "---|" * len(inits))
    for index, label in enumerate(names):
        cells = [f"{statistics.median(row[index] for row in rows[init]) * 1000:.1f} ms" for init in inits]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
