"""An Idempotency-Key survives an API crash: a real ``flowdeck api`` killed between storing a run
and storing its answer, restarted, and the retry answers with that run (never a second one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flowdeck.services.core.idempotency import CRASH_HOOK
from tests.support.network import free_port

WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://crash"}


@contextmanager
def api(tmp_path: Path, port: int, **values: str) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update({"FLOWDECK_DATA_DIR": str(tmp_path / "data"), "FLOWDECK_BACKENDS": "demo", **values})
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "api", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "flowdeck api did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """FLOWDECK_DATABASE_URL for a fresh database of each kind (none: SQLite in the data folder)."""
    if request.param == "sqlite":
        return {}
    return {"FLOWDECK_DATABASE_URL": request.getfixturevalue("postgres_server").create_database()}


@pytest.mark.parametrize("path", [f"{WES}/runs", "/jobs"])
def test_a_retry_after_a_crash_answers_with_the_run_the_key_created(
    tmp_path: Path, database: dict[str, str], path: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Idempotency-Key": "crash-1"}
    with api(tmp_path, port, **database, **{CRASH_HOOK: "1"}) as proc:
        with pytest.raises(httpx.TransportError):
            post(url, path, headers)
        assert proc.wait(timeout=20) == -signal.SIGKILL
    with api(tmp_path, port, **database):
        retried = post(url, path, headers)
        assert retried.status_code in (200, 201, 202), retried.text
        assert retried.headers["Idempotent-Replayed"] == "true"
        again = post(url, path, headers)
        stored = httpx.get(f"{url}{WES}/runs").json()["runs"]
    run_id = retried.json()["run_id" if path.startswith(WES) else "id"]
    assert [run["run_id"] for run in stored] == [run_id]
    assert again.json() == retried.json() or again.json()["id"] == run_id


def post(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if path.startswith(WES):
        return httpx.post(f"{url}{path}", data=FORM, headers=headers, timeout=30)
    sample = {"sample_id": "S1", "fastq_r1": "s3://lab/S1_R1.fastq.gz", "reference_genome": "hg38"}
    job = {"pipeline_name": "gatk_variant_calling", "pipeline_version": "1.0.0", "parameters": sample}
    return httpx.post(f"{url}{path}", json=job, headers=headers, timeout=30)
