"""Where a warm sandbox's set-up time goes (root only): the phases of ``sandbox.enter``.

    sudo .venv/bin/python bench/sandbox_setup.py            # 30 sandboxes, a 60 MB heap
    sudo .venv/bin/python bench/sandbox_setup.py --runs 10 --heap-mb 0

Each sandbox is made as a warm start makes it: the worker builds the plan
(``LocalEngineBackend.sandboxed``), a fork unshares the PID namespace, its child (pid 1
there) unshares the rest, builds the root (mounts, pivot_root), takes the sandbox user and
forks the engine, which exits at once. The process holds a heap of ``--heap-mb`` like a warm
cwltool's (~60 MB), because forking it is part of the cost. Wall times are medians per phase;
"CPU" is user + system seconds of the whole tree (from wait4), steadier under load than wall
time; the kernel's deferred work (freeing the namespaces) is in neither.
"""

from __future__ import annotations

import argparse
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

PHASES = ("unshare", "build root", "limits + user", "fork engine")


def _inside(plan: dict[str, object], out: int) -> None:
    """pid 1 of the new PID namespace: enter's steps, timed; never returns."""
    marks = [time.perf_counter()]
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
    ready, tell = os.pipe()
    engine = os.fork()
    if engine == 0:
        os.write(tell, str(time.perf_counter()).encode())
        os._exit(0)
    marks.append(float(os.read(ready, 64)))
    os.waitpid(engine, 0)
    os.write(out, json.dumps([b - a for a, b in itertools.pairwise(marks)]).encode())
    os._exit(0)


def one(backend: CwltoolBackend, work: Path, name: str, network: bool) -> list[float]:
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
    if child == 0:
        sandbox.new_pid_namespace()
        first = os.fork()
        if first == 0:
            _inside(plan, tell)
        os.waitpid(first, 0)
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
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("warm sandboxes need root: run this as root")
    heap = [bytearray(os.urandom(1024 * 1024)) for _ in range(args.heap_mb)]  # written: really resident
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-sandbox-setup-") as tmp:
        backend = CwltoolBackend(Settings(data_dir=Path(tmp) / "data"))
        rows = [one(backend, Path(tmp), f"r{n}", args.network) for n in range(args.runs)]
    names = ("plan (worker)", *PHASES, "fork → reaped (whole sandbox)", "CPU of the tree")
    network = "with the network" if args.network else "without network (a network namespace each)"
    print(f"{args.runs} sandboxes {network}, heap {len(heap)} MB, load average {os.getloadavg()[0]:.1f}")
    for index, label in enumerate(names):
        print(f"| {label} | {statistics.median(row[index] for row in rows) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
