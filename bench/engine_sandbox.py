"""The cost of the per-run sandbox: the burst and a single run, sandboxed and not, side by side.

    .venv/bin/python bench/engine_sandbox.py            # 3 bursts and 7 single runs of each
    .venv/bin/python bench/engine_sandbox.py --quick    # 1 burst and 3 single runs of each

Both configurations are ``flowdeck up`` with default settings (cwltool backend, warm starts),
one with ``FLOWDECK_SANDBOX=true`` (the default) and one with ``FLOWDECK_SANDBOX=false``;
repetitions alternate between them so drifting load on the shared machine hits both alike.
Burst: 20 tiny CWL runs at once, first submit to last COMPLETE (bench/engine_burst.py).
Single run: submit to the server's COMPLETE event with the worker idle (bench/engine_single.py).
CPU: seconds of the service's own processes and of its engines (warm servers, launchers and
all they reaped) during each burst, from bench/engine_burst.py; steadier than wall time when
others load the machine (kernel work done outside these processes, such as freeing a run's
network namespace, is not in it).
Engine start: the cwltool backend called directly (no server, no polling): ``submit`` of the tiny
echo tool until the launcher's exit record, warm and cold, the two modes alternating; this is the
sandbox's own cost without the server's noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.engine_burst import RUNS, one_burst
from bench.engine_single import events, wait_terminal

from flowdeck.backends.cwltool import CwltoolBackend
from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import read_json
from flowdeck.domain.runs import RunSpec
from flowdeck.settings import Settings

MODES = {"sandboxed": {"FLOWDECK_SANDBOX": "true"}, "unsandboxed": {"FLOWDECK_SANDBOX": "false"}}
TARGET_BURST = 0.10
TARGET_SINGLE = 0.050


def single_runs(work: Path, reps: int, extra_env: dict[str, str]) -> list[float]:
    """Seconds from just before the POST to the server's COMPLETE event, one run at a time."""
    totals = []
    with common.flowdeck_up(work / "data", extra_env=extra_env) as server:
        warm = common.submit_echo_cwl(server.url, "warm-up")
        if wait_terminal(server.url, warm) != "COMPLETE":
            raise RuntimeError(f"warm-up run {warm} did not complete")
        for rep in range(reps):
            time.sleep(1.0)
            started = time.time()
            run_id = common.submit_echo_cwl(server.url, f"rep {rep}")
            if wait_terminal(server.url, run_id) != "COMPLETE":
                raise RuntimeError(f"run {run_id} did not complete")
            totals.append(events(server.url, run_id)["COMPLETE"] - started)
    return totals


def engine_start(work: Path, name: str, sandbox: bool, warm: bool) -> float:
    """Seconds from the backend's submit to the launcher's exit record of one echo run."""
    folder = work / name
    (folder / "attachments").mkdir(parents=True)
    (folder / "attachments" / "echo.cwl").write_text(common.ECHO_CWL)
    backend = CwltoolBackend(Settings(data_dir=work / "data", sandbox=sandbox, warm_starts=warm))
    spec = RunSpec(
        run_id=name,
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="echo.cwl",
        workflow_params={"message": "hello"},
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )
    started = time.monotonic()
    backend.submit(spec)
    exit_record = control_dir(spec.workdir) / "exit.json"
    while read_json(exit_record) is None:
        time.sleep(0.002)
    took = time.monotonic() - started
    record = read_json(exit_record) or {}
    if record.get("exit_code") != 0:
        raise RuntimeError(f"{name} failed: {record}")
    return took


def engine_starts(work: Path, reps: int, warm: bool) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {mode: [] for mode in MODES}
    engine_start(work, f"prime-{warm}", True, warm)  # the warm server starts on the first run
    for rep in range(reps):
        for mode in list(MODES)[:: 1 if rep % 2 == 0 else -1]:
            found[mode].append(engine_start(work, f"{mode}-{warm}-{rep}", mode == "sandboxed", warm))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--singles", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1 burst and 3 single runs of each")
    args = parser.parse_args()
    bursts, singles = (1, 3) if args.quick else (args.bursts, args.singles)
    load_before = common.load_average()
    burst: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    single: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-sandbox-") as tmp:
        for rep in range(bursts):
            for mode in list(MODES)[:: 1 if rep % 2 == 0 else -1]:
                took, _, _, own, engines = one_burst(Path(tmp) / f"burst-{mode}-{rep}", RUNS, MODES[mode])
                burst[mode].append(took)
                cpu[mode].append((own, engines))
                print(f"burst {rep + 1} {mode}: {took:.2f} s, CPU {own:.2f} + {engines:.2f} s", file=sys.stderr)
        for mode in MODES:
            single[mode] = single_runs(Path(tmp) / f"single-{mode}", singles, MODES[mode])
            print(f"single {mode}: {_join(single[mode])}", file=sys.stderr)
        starts = {warm: engine_starts(Path(tmp) / f"starts-{warm}", 3 * singles, warm) for warm in (True, False)}
    b_on, b_off = common.median(burst["sandboxed"]), common.median(burst["unsandboxed"])
    s_on, s_off = common.median(single["sandboxed"]), common.median(single["unsandboxed"])
    b_cost, s_cost = b_on / b_off - 1, s_on - s_off
    command = " ".join([".venv/bin/python", "bench/engine_sandbox.py", *sys.argv[1:]])
    print(
        "\n".join(
            [
                "## The sandbox's cost (cwltool backend, warm starts)",
                "",
                f"Command: `{command}`; medians; load average {load_before} before, {common.load_average()} after; "
                f"{os.cpu_count()} cores shared with other work.",
                "",
                "| | sandboxed | unsandboxed | cost |",
                "|---|---|---|---|",
                f"| burst of {RUNS} tiny CWL runs, first submit → last COMPLETE, s | {b_on:.2f} ({_join(burst['sandboxed'])}) "
                f"| {b_off:.2f} ({_join(burst['unsandboxed'])}) | **{b_cost:+.1%}** (target ≤ {TARGET_BURST:.0%}: "
                f"{'met' if b_cost <= TARGET_BURST else 'MISSED'}) |",
                f"| one run, submit → COMPLETE, s | {s_on:.3f} ({_join(single['sandboxed'])}) "
                f"| {s_off:.3f} ({_join(single['unsandboxed'])}) | **{s_cost * 1000:+.0f} ms** (target ≤ "
                f"{TARGET_SINGLE * 1000:.0f} ms: {'met' if s_cost <= TARGET_SINGLE else 'MISSED'}) |",
                _cpu_row(
                    "service (API + worker)",
                    [own for own, _ in cpu["sandboxed"]],
                    [own for own, _ in cpu["unsandboxed"]],
                ),
                _cpu_row(
                    "engines (launchers, sandboxes, cwltool)",
                    [e for _, e in cpu["sandboxed"]],
                    [e for _, e in cpu["unsandboxed"]],
                ),
                *(_start_row(kind, starts[warm]) for warm, kind in ((True, "warm"), (False, "cold"))),
                "",
            ]
        )
    )


def _cpu_row(what: str, on: list[float], off: list[float]) -> str:
    """CPU seconds of one burst: less sensitive than wall time to the other work on the machine."""
    a, b = common.median(on), common.median(off)
    return f"| CPU of a burst, {what}, s | {a:.2f} ({_join(on)}) | {b:.2f} ({_join(off)}) | {a / b - 1:+.1%} |"


def _start_row(kind: str, found: dict[str, list[float]]) -> str:
    on, off = common.median(found["sandboxed"]), common.median(found["unsandboxed"])
    return (
        f"| engine start, {kind}: backend submit → exit record of the echo tool (no server), s "
        f"| {on:.3f} | {off:.3f} | **{(on - off) * 1000:+.0f} ms** ({len(found['sandboxed'])} each) |"
    )


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
