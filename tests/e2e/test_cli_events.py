"""``flowdeck events`` and ``flowdeck runs watch`` against a real ``flowdeck up`` server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_up import server  # noqa: F401  (the fixture)

WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://cli-events"}
CLI = [sys.executable, "-m", "flowdeck.cli.main"]


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "FLOWDECK_SERVER": url}


def test_events_prints_one_json_event_per_line_as_they_happen(server: str, tmp_path: Path) -> None:  # noqa: F811
    run_id = httpx.post(f"{server}{WES}/runs", data=FORM).json()["run_id"]
    follower = subprocess.Popen(
        [*CLI, "events", "-o", "json", "--type", "state", "--run", run_id, "--since", "0"],
        env=_env(server), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        states = []
        deadline = time.monotonic() + 60
        while "COMPLETE" not in states:
            assert time.monotonic() < deadline, states
            event = json.loads(follower.stdout.readline())
            assert event["run_id"] == run_id
            states.append(event["to_state"])
        assert states == ["QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"]
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_watch_follows_the_stream_and_fails_with_the_run(server: str, tmp_path: Path) -> None:  # noqa: F811
    form = {**FORM, "workflow_engine_parameters": json.dumps({"outcome": "failure"})}
    run_id = httpx.post(f"{server}{WES}/runs", data=form).json()["run_id"]
    watched = subprocess.run(
        [*CLI, "runs", "watch", run_id], env=_env(server), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert watched.returncode == 1, watched.stdout + watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].split()[1] == "QUEUED", lines
    assert lines[-1].split()[1] == "EXECUTOR_ERROR", lines
    missing = subprocess.run(
        [*CLI, "runs", "watch", "nope"], env=_env(server), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1
    assert "404" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_attachments_keep_their_relative_paths_and_a_missing_file_is_one_line(
    server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "echo.txt").write_text("hello")
    submit = [*CLI, "runs", "submit", "--type", "DEMO", "--type-version", "1.0", "--url", "demo://attach"]
    done = subprocess.run(
        [*submit, "--attach", "tools/echo.txt", "--watch"],
        env=_env(server), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0]
    stored = tmp_path / "data" / "runs" / run_id / "attachments" / "tools" / "echo.txt"
    assert stored.read_text() == "hello"
    missing = subprocess.run(
        [*submit, "--attach", "tools/nope.cwl"], env=_env(server), cwd=tmp_path, capture_output=True, text=True
    )
    assert missing.returncode == 2  # a bad argument, not a server's refusal
    assert missing.stderr.strip() == "flowdeck: No such file or directory: tools/nope.cwl"


def test_jobs_get_watch_list_and_a_missing_job(server: str, tmp_path: Path) -> None:  # noqa: F811
    run_id = httpx.post(f"{server}{WES}/runs", data=FORM).json()["run_id"]

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "jobs", *argv], env=_env(server), cwd=tmp_path, capture_output=True, text=True)

    watched = cli("get", run_id, "--watch")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.splitlines()[-1].split()[1] == "COMPLETE"
    listed = cli("list", "-o", "json")
    assert run_id in [job["id"] for job in json.loads(listed.stdout)["jobs"]]
    assert run_id in cli("list").stdout
    missing = cli("get", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("flowdeck: 404")
    assert "Traceback" not in missing.stderr
