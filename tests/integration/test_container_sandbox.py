"""A containerised run's engine is sandboxed too (issue 21, docs/adr/0013), for real.

cwltool evaluates a tool's expressions in the engine, outside the containers: here a CWL
expression escapes node's vm to the engine's process and reads another group's run, the
data folder, the database, the storage secret and the service's /proc. Sandboxed, every
read fails while the run's own container step completes under rootless podman inside the
sandbox; the control runs the same tool unsandboxed and reads them, so the probe is real.
miniwdl offers no expression that reads a host path it was not given, so for WDL the test
looks at what the running engine sees (its /proc/PID/root). Cancel ends the containers too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import read_json
from flowdeck.backends.registry import load_class
from flowdeck.domain.runs import RunSpec, SyncReport
from flowdeck.domain.states import State
from flowdeck.settings import Settings
from tests.contract import contract
from tests.integration.test_containers import SANDBOX_IMAGES, test_image  # noqa: F401 (the fixture)
from tests.integration.test_sandbox import DATABASE_TEXT, OTHER_GROUPS_DATA, SIGNING_KEY, service_layout

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (make install)"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make install)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a containerised run is sandboxed only by a root service"),
]

PROBES = Path(__file__).resolve().parents[1] / "workflows" / "containers"
GUARDED = ("other_run", "database", "storage_secret", "service_proc", "service_environ")


def make_spec(data: Path, workflow: str, params: dict[str, Any]) -> RunSpec:
    folder = data / "runs" / "probe"
    (folder / "attachments").mkdir(parents=True)
    shutil.copy(PROBES / workflow, folder / "attachments" / workflow)
    kind, version = ("CWL", "v1.2") if workflow.endswith(".cwl") else ("WDL", "1.1")
    return RunSpec(
        run_id="probe",
        workflow_type=kind,
        workflow_type_version=version,
        workflow_url=workflow,
        workflow_params=params,
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def run(engine: str, data: Path, workflow: str, params: dict[str, Any], **overrides: Any) -> tuple[SyncReport, str]:
    """One run of ``workflow`` with containers on; its report and every byte it left behind."""
    if not load_class(engine).available():
        pytest.skip(f"{engine} is not installed")
    backend = load_class(engine)(
        Settings(data_dir=data, containers=True, container_sandbox_images=SANDBOX_IMAGES, **overrides)
    )
    spec = make_spec(data, workflow, params)
    report = contract.wait_done(backend, contract.submit(backend, spec), 180)
    files = [p for p in spec.workdir.rglob("*") if p.is_file() and not p.is_symlink()]
    return report, "".join(path.read_text(errors="replace") for path in files)


def cwl_probe(data: Path, **overrides: Any) -> tuple[dict[str, str], str]:
    paths = [
        str(data / "runs" / "other-group-run" / "work" / "outputs" / "greeting.txt"),
        str(data),
        str(data / "flowdeck.db"),
        str(data / "storage-secret"),
        str(os.getpid()),
    ]
    report, left = run("cwltool", data, "engine_probe.cwl", {"paths": paths}, **overrides)
    assert report.state is State.COMPLETE, report
    found = [f for f in report.output_files or [] if f.name.endswith("probe.txt")]
    lines = Path(found[0].location).read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(": ") for line in lines)}, left


def test_a_containerised_cwl_engine_reaches_nothing_and_its_container_runs(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    data = service_layout(tmp_path)
    results, left = cwl_probe(data)
    assert {key: results[key] for key in GUARDED} == dict.fromkeys(GUARDED, "DENIED")
    assert results["container"] == "done"
    # The data folder holds the mount points of the run's folder and its podman files, nothing else.
    assert set(results["data_dir"].removeprefix("READ ").split()) <= {".", "..", "runs", "containers"}
    for secret in (OTHER_GROUPS_DATA, DATABASE_TEXT, SIGNING_KEY):
        assert secret not in left
    plan = read_json(control_dir(data / "runs" / "probe" / "work") / "sandbox.json") or {}
    assert plan.get("nested") is True, "the engine ran in the run's sandbox"


def test_without_the_sandbox_the_cwl_expression_reads_the_host(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    """The control: the same expressions read everything when nothing stops the engine."""
    results, _ = cwl_probe(service_layout(tmp_path), sandbox=False)
    assert results["other_run"] == f"READ {OTHER_GROUPS_DATA}"
    assert results["storage_secret"] == f"READ {SIGNING_KEY}"
    assert "flowdeck.db" in results["data_dir"]


def engine_views(inputs: Path, wanted: list[str], deadline: float) -> dict[str, bool]:
    """Which of ``wanted`` the running miniwdl (the process naming ``inputs``) sees, read
    through /proc/PID/root: its own mount namespace when sandboxed."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                # Not the launcher nor the sandbox's entry (python -m flowdeck.backends.*), which name it too.
                if str(inputs).encode() in argv and not any(arg.startswith(b"flowdeck.") for arg in argv):
                    return {path: os.path.exists(f"{proc}/root{path}") for path in wanted}
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError("miniwdl never showed up")


def test_a_containerised_wdl_engine_sees_only_its_run(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    """Sandboxed, miniwdl sees its run folder but not the data folder's secrets (seen through
    the same /proc/PID/root, so the look itself is shown to work), while its task completes
    in its container, where the secret is out of reach too."""
    data = service_layout(tmp_path)
    secret, other = data / "storage-secret", data / "runs" / "other-group-run"
    backend = load_class("miniwdl")(Settings(data_dir=data, containers=True, container_sandbox_images=SANDBOX_IMAGES))
    spec = make_spec(data, "engine_probe.wdl", {"engine_probe.secret_path": str(secret)})
    handle = contract.submit(backend, spec)
    wanted = [str(secret), str(data / "flowdeck.db"), str(other), str(spec.workdir)]
    seen = engine_views(control_dir(spec.workdir) / "inputs.json", wanted, time.monotonic() + 60)
    report = contract.wait_done(backend, handle, 180)
    assert report.state is State.COMPLETE, report
    assert seen == {path: path == str(spec.workdir) for path in wanted}
    found = [f for f in report.output_files or [] if f.name.endswith("stdout.txt")]
    lines = Path(found[0].location).read_text().splitlines()
    assert lines == ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', "in_container: DENIED", "container: done"]
    plan = read_json(control_dir(spec.workdir) / "sandbox.json")
    assert (plan or {}).get("nested") is True, "the engine ran in the run's sandbox"


def sleepers() -> list[int]:
    """Processes of the sleeping container step (``sleep 4711``), wherever they run."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == b"sleep\0" + b"4711\0":
                found.append(int(proc.name))
    return found


def test_a_sandboxed_containerised_run_is_cancelled_with_its_containers(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    data = service_layout(tmp_path)
    backend = load_class("cwltool")(Settings(data_dir=data, containers=True, container_sandbox_images=SANDBOX_IMAGES))
    handle = contract.submit(backend, make_spec(data, "sleep.cwl", {}))
    deadline = time.monotonic() + 120
    while not sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers(), "the container step never started"
    backend.cancel(handle)
    report = contract.wait_done(backend, handle, 60)
    assert report.state is State.CANCELED, report
    assert sleepers() == [], "the container's process outlived the cancelled run"
    assert (control_dir(handle.workdir) / "cancel.json").exists(), "the launcher's record of the cancel"
