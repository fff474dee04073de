"""Each run in its own sandbox, for real, on every local engine.

A workflow tries what issue 21's exploit did and more: read another group's run folder,
list the data folder, read the database file and the storage secret, look at the
service's /proc, reach the network. Sandboxed, every attempt fails inside the run and
nothing secret reaches its outputs or logs; with the sandbox off (the control) the same
workflow reads them, so the test can tell. A fork bomb and a memory hog end as failed
runs naming the limit they reached.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local import sandbox
from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import read_json
from flowdeck.backends.registry import load_class
from flowdeck.domain.runs import RunSpec, SyncReport
from flowdeck.domain.states import State
from flowdeck.settings import Settings
from tests.contract import contract

pytestmark = pytest.mark.engine

PROBES = Path(__file__).resolve().parent.parent / "workflows" / "sandbox"
# backend -> (workflow, workflow type, version, how its parameters carry the probe's arguments)
ENGINES: dict[str, tuple[str, str, str]] = {
    "cwltool": ("probe.cwl", "CWL", "v1.2"),
    "toil": ("probe.cwl", "CWL", "v1.2"),
    "snakemake": ("Snakefile", "SMK", "9"),
    "miniwdl": ("probe.wdl", "WDL", "1.0"),
}
OTHER_GROUPS_DATA = "alice patient secret"
DATABASE_TEXT = "SQLite format 3 database-secret-7f3a"
SIGNING_KEY = "signing-key-secret-91c2"
GUARDED = ("other_run", "database", "storage_secret", "service_proc", "service_environ", "network")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections: what a run must not reach."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def backend_for(name: str, settings: Settings) -> LocalEngineBackend:
    cls = load_class(name)
    assert issubclass(cls, LocalEngineBackend)
    if not cls.available():
        pytest.skip(f"{name} is not installed")
    if settings.sandbox and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make install)")
    return cls(settings)


def service_layout(tmp_path: Path) -> Path:
    """A data folder as the service keeps it: its database, signing key and another group's run."""
    data = tmp_path / "data"
    other = data / "runs" / "other-group-run" / "work" / "outputs"
    other.mkdir(parents=True)
    (other / "greeting.txt").write_text(OTHER_GROUPS_DATA + "\n")
    (data / "flowdeck.db").write_text(DATABASE_TEXT)
    (data / "storage-secret").write_text(SIGNING_KEY)
    return data


def run_spec(name: str, data: Path, run_id: str, params: dict[str, Any], workflow: str | None = None) -> RunSpec:
    folder = data / "runs" / run_id
    shutil.copytree(PROBES, folder / "attachments")
    default, wf_type, version = ENGINES[name]
    return RunSpec(
        run_id=run_id,
        workflow_type=wf_type,
        workflow_type_version=version,
        workflow_url=workflow or default,
        workflow_params=params,
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def probe(name: str, tmp_path: Path, port: int, **overrides: Any) -> tuple[dict[str, str], str]:
    """Run the probe workflow; what each probe got, and every byte the run left behind."""
    data = service_layout(tmp_path)
    settings = Settings(data_dir=data, **overrides)
    backend = backend_for(name, settings)
    args = [
        str(data / "runs" / "probe" / "attachments" / "probe.sh"),
        str(data / "runs" / "other-group-run" / "work" / "outputs" / "greeting.txt"),
        str(data),
        str(data / "flowdeck.db"),
        str(data / "storage-secret"),
        str(os.getpid()),
        str(port),
    ]
    spec = run_spec(name, data, "probe", {"args": args})
    report = contract.wait_done(backend, contract.submit(backend, spec), 180)
    assert report.state is State.COMPLETE, report
    found = [f for f in report.output_files or [] if f.name.endswith("probe.txt")]
    assert len(found) == 1, report.output_files
    lines = Path(found[0].location).read_text().splitlines()
    results = {key: value.strip() for key, _, value in (line.partition(": ") for line in lines)}
    left = "".join(
        path.read_text(errors="replace") for path in spec.workdir.rglob("*") if path.is_file() and not path.is_symlink()
    )
    return results, left


@pytest.mark.parametrize("name", list(ENGINES))
def test_a_run_reaches_nothing_of_the_service_or_other_groups(name: str, tmp_path: Path, listener: int) -> None:
    results, left = probe(name, tmp_path, listener)
    assert {key: results[key] for key in GUARDED} == dict.fromkeys(GUARDED, "DENIED")
    assert "flowdeck.db" not in results["data_dir"]
    assert "storage-secret" not in results["data_dir"]
    assert "greeting.txt" not in results["other_runs"]
    assert results["user"] not in {"READ 0", "DENIED"}, "the run must not execute as root"
    for secret in (OTHER_GROUPS_DATA, DATABASE_TEXT, SIGNING_KEY):
        assert secret not in left


def test_without_the_sandbox_the_same_probe_gets_through(tmp_path: Path, listener: int) -> None:
    """The control: the probes above are real, they read everything when nothing stops them."""
    results, left = probe("cwltool", tmp_path, listener, sandbox=False)
    assert results["other_run"] == f"READ {OTHER_GROUPS_DATA}"
    assert results["storage_secret"] == f"READ {SIGNING_KEY}"
    assert results["network"].startswith("READ")
    assert OTHER_GROUPS_DATA in left


def test_the_run_folder_is_private_to_the_sandbox_user(tmp_path: Path, listener: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("run folders change owner only when the service runs as root")
    probe("cwltool", tmp_path, listener)
    workdir = tmp_path / "data" / "runs" / "probe" / "work"
    assert workdir.stat().st_mode & 0o077 == 0
    assert workdir.stat().st_uid != 0
    assert control_dir(workdir).stat().st_uid == 0, "the launcher's records stay the service's"


def limited_run(tmp_path: Path, workflow: str, **limits: Any) -> SyncReport:
    data = service_layout(tmp_path)
    backend = backend_for("cwltool", Settings(data_dir=data, **limits))
    spec = run_spec("cwltool", data, "limited", {}, workflow=workflow)
    return contract.wait_done(backend, contract.submit(backend, spec), 180)


def test_a_fork_bomb_ends_as_a_failed_run_naming_the_process_limit(tmp_path: Path) -> None:
    report = limited_run(tmp_path, "bomb.cwl", sandbox_max_processes=64)
    assert report.state is State.EXECUTOR_ERROR, report
    assert "processes limit (FLOWDECK_SANDBOX_MAX_PROCESSES=64)" in (report.reason or ""), report.reason
    assert any("processes limit" in line for line in report.system_logs or [])
    exit_record = read_json(control_dir(tmp_path / "data" / "runs" / "limited" / "work") / "exit.json") or {}
    if sandbox.cgroup_root() is not None:
        assert exit_record.get("limit") == "processes", "the launcher ended the run at its ceiling"


def test_a_memory_hog_ends_as_a_failed_run_naming_the_memory_limit(tmp_path: Path) -> None:
    report = limited_run(tmp_path, "hog.cwl", sandbox_memory_mb=2048)
    assert report.state is State.EXECUTOR_ERROR, report
    assert "memory limit (FLOWDECK_SANDBOX_MEMORY_MB=2048)" in (report.reason or ""), report.reason
    exit_record = read_json(control_dir(tmp_path / "data" / "runs" / "limited" / "work") / "exit.json") or {}
    assert exit_record.get("exit_code") not in (None, 0)
