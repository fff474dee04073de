"""API and worker on two "hosts": `flowdeck api` with data folder A and `flowdeck worker` with data
folder B, sharing only PostgreSQL and one S3 bucket (moto's server). CWL, Snakemake and WDL runs
complete; every output, every log and each run's archive download through the API's links alone;
`toil-wes-cwl-runner` runs a workflow against the API and gets outputs it can fetch. Neither the
API's folder holds a run folder nor does the worker write into it (docs/deploy.md)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.backends.registry import load_class
from tests.integration.test_results_storage import ENGINES
from tests.support.network import free_port, moto_s3, shared_store_env
from tests.support.processes import stop

pytestmark = [pytest.mark.engine, pytest.mark.postgres]
WES = "/ga4gh/wes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
BUCKET = "two-hosts"
TOIL_WES = Path(sys.executable).parent / "toil-wes-cwl-runner"


@dataclass
class Hosts:
    """The API's URL, the two data folders, and what A held before any run."""

    url: str
    api_dir: Path
    worker_dir: Path
    api_files_before: set[Path]
    worker_log: Path


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli.main", command], env=env, cwd=log.parent, stdout=out, stderr=out
        )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}{WES}/service-info", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the API did not start:\n{log.read_text()}")


def _environment(database_url: str, s3_url: str) -> dict[str, str]:
    """What both hosts are given alike: the database, the bucket, the engines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            **shared_store_env(database_url, s3_url, BUCKET),
            "FLOWDECK_BACKENDS": "cwltool,snakemake,miniwdl",
            "FLOWDECK_LOG_LEVEL": "WARNING",
            "FLOWDECK_WORKER_POLL_SECONDS": "0.2",
        }
    )
    return env


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    for engine in ENGINES:
        if not load_class(engine).available():
            pytest.skip(f"{engine} is not installed")
    from tests.support.postgres import PostgresNotInstalled, shared_server

    try:
        database_url = shared_server().create_database()
    except PostgresNotInstalled as error:
        pytest.skip(str(error))
    root = tmp_path_factory.mktemp("two-hosts")
    api_dir, worker_dir = root / "host-a", root / "host-b"
    api_dir.mkdir()
    worker_dir.mkdir()
    with moto_s3() as s3_url:
        import boto3

        boto3.client(
            "s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        ).create_bucket(Bucket=BUCKET)
        env, port = _environment(database_url, s3_url), free_port()
        url = f"http://127.0.0.1:{port}"
        api_log, worker_log = root / "api.log", root / "worker.log"
        api = _start("api", {**env, "FLOWDECK_DATA_DIR": str(api_dir), "FLOWDECK_PORT": str(port)}, api_log)
        try:
            _wait_ready(url, api, api_log)
            before = _files(api_dir)
            worker = _start("worker", {**env, "FLOWDECK_DATA_DIR": str(worker_dir)}, worker_log)
            try:
                yield Hosts(url, api_dir, worker_dir, before, worker_log)
            finally:
                stop(worker)
        finally:
            stop(api)


def _submit(client: httpx.Client, engine: str) -> str:
    wf_type, version, workflow = ENGINES[engine]
    form = {
        "workflow_type": wf_type,
        "workflow_type_version": version,
        "workflow_url": workflow.name,
        "workflow_params": json.dumps({"message": f"two hosts {engine}"}),
    }
    answer = client.post(
        f"{WES}/runs", data=form, files={"workflow_attachment": (workflow.name, workflow.read_bytes())}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run_id"])


def _wait(client: httpx.Client, run_ids: list[str], hosts: Hosts, seconds: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = {r: client.get(f"{WES}/runs/{r}/status").json()["state"] for r in run_ids}
        if set(states.values()) <= TERMINAL:
            return states
        time.sleep(0.5)
    raise AssertionError(f"runs did not end: {states}\n{hosts.worker_log.read_text()}")


def fetch(client: httpx.Client, url: str) -> bytes:
    """A link as a remote client follows it: the API's redirect, then the store's pre-signed URL."""
    first = client.get(url)
    assert first.status_code == 307, first.text
    location = first.headers["location"]
    with urllib.request.urlopen(location) as answer:  # straight from the store, not through flowdeck
        data: bytes = answer.read()
    return data


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_run(client: httpx.Client, run_id: str, message: bytes) -> None:
    log = client.get(f"{WES}/runs/{run_id}").json()
    assert log["run_log"]["exit_code"] == 0, log
    files = [f for entry in log["outputs"].values() for f in entry["files"]]
    contents = {}
    for item in files:
        data = fetch(client, item["url"])
        assert (len(data), _sha256(data)) == (item["size"], item["checksum"])
        contents[item["name"]] = data
    assert message in contents.values(), contents
    tasks = client.get(f"{WES}/runs/{run_id}/tasks").json()["task_logs"]
    assert len(tasks) >= 2
    logs = [log["run_log"].get(s) for s in ("stdout", "stderr")] + [
        t.get(s) for t in tasks for s in ("stdout", "stderr")
    ]
    assert all(task.get("stdout") or task.get("stderr") for task in tasks), tasks
    for url in filter(None, logs):
        fetch(client, url)
    archive = client.get(f"{WES}/runs/{run_id}/outputs.zip")
    assert archive.status_code == 200, archive.text
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert {n: zipped.read(n) for n in zipped.namelist()} == {f"{run_id}/{n}": d for n, d in contents.items()}


def test_cwl_snakemake_and_wdl_runs_complete_and_download_through_the_api(hosts: Hosts) -> None:
    with httpx.Client(base_url=hosts.url, timeout=30) as client:
        run_ids = {engine: _submit(client, engine) for engine in ENGINES}
        assert _wait(client, list(run_ids.values()), hosts) == dict.fromkeys(run_ids.values(), "COMPLETE")
        for engine, run_id in run_ids.items():
            _check_run(client, run_id, f"TWO HOSTS {engine.upper()}\n".encode())
    _check_hosts_apart(hosts)


def test_toil_wes_cwl_runner_gets_outputs_it_can_fetch(hosts: Hosts, tmp_path: Path) -> None:
    if not TOIL_WES.exists() or not (TOIL_WES.parent / "cwltool").exists():
        pytest.skip("toil-wes-cwl-runner (flowdeck[toil], toil's server extra) is not installed")
    workflow, inputs = tmp_path / "two_step.cwl", tmp_path / "inputs.json"
    shutil.copy(ENGINES["cwltool"][2], workflow)
    inputs.write_text(json.dumps({"message": "through toil"}))
    answer = subprocess.run(
        [str(TOIL_WES), "--wes_endpoint", hosts.url, str(workflow), str(inputs)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={**os.environ, "PATH": f"{TOIL_WES.parent}:{os.environ['PATH']}"},  # it runs cwltool --print-deps
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    outputs: dict[str, Any] = json.loads(answer.stdout)
    elsewhere = tmp_path / "client"
    elsewhere.mkdir()
    with httpx.Client(timeout=30) as client:
        for entry in outputs.values():
            for item in entry["files"]:
                target = elsewhere / Path(item["name"]).name
                target.write_bytes(fetch(client, item["url"]))
                assert (target.stat().st_size, _sha256(target.read_bytes())) == (item["size"], item["checksum"])
    assert b"THROUGH TOIL\n" in [p.read_bytes() for p in elsewhere.iterdir()]
    _check_hosts_apart(hosts)


def _check_hosts_apart(hosts: Hosts) -> None:
    """The runs ran in B; A holds no run folder and nothing new but an empty ``runs/`` (the API
    validates a workflow in a run folder it removes before the run is stored)."""
    assert _files(hosts.api_dir) - hosts.api_files_before <= {Path("runs")}
    assert (hosts.worker_dir / "runs").is_dir()
