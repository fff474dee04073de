"""What an operator sees when starting flowdeck goes wrong: one line, not a traceback.

Every test runs the real ``flowdeck`` command as a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.network import free_port

FLOWDECK = [sys.executable, "-m", "flowdeck.cli.main"]


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update({"FLOWDECK_DATA_DIR": str(tmp_path / "data"), "FLOWDECK_BACKENDS": "demo", **values})
    return env


def run_cli(tmp_path: Path, *argv: str, stdin: str = "", **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWDECK, *argv], env=clean_env(tmp_path, **values), cwd=tmp_path, input=stdin,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in lines[0]
    for word in words:
        assert word in lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["up", "api"])
def test_a_busy_port_is_one_line_and_a_failure(tmp_path: Path, busy_port: int, command: str) -> None:
    result = run_cli(tmp_path, command, "--port", str(busy_port))
    assert_one_line(result, f"127.0.0.1:{busy_port}", "in use")
    assert "up:" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [["up"], ["api"], ["worker"], ["sync", "--once"], ["db", "upgrade"], ["users", "list"]],
    ids=lambda argv: " ".join(argv),
)
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path, argv: list[str]) -> None:
    result = run_cli(tmp_path, *argv, FLOWDECK_PORT="notaport")
    assert_one_line(result, "FLOWDECK_PORT")


def test_a_bad_nested_or_bounded_setting_names_its_variable(tmp_path: Path) -> None:
    assert_one_line(run_cli(tmp_path, "worker", FLOWDECK_DATABASE_POOL_SIZE="0"), "FLOWDECK_DATABASE_POOL_SIZE")


@contextmanager
def serving(tmp_path: Path, argv: list[str], **values: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], env=clean_env(tmp_path, **values), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_the_access_log_names_the_caller_and_never_a_credential(tmp_path: Path) -> None:
    created = run_cli(tmp_path, "users", "create", "alice", "--password-stdin", stdin="s3cret-pw\n")
    assert created.returncode == 0, created.stderr
    with serving(tmp_path, [*FLOWDECK, "api"], FLOWDECK_AUTH_MODE="basic", FLOWDECK_ACCESS_LOG="true") as (url, proc):
        ok = httpx.get(f"{url}/jobs", params={"access_token": "query-secret"}, auth=("alice", "s3cret-pw"))
        refused = httpx.get(f"{url}/jobs", auth=("alice", "wrong-pw"))
    assert (ok.status_code, refused.status_code) == (200, 401)
    output = proc.stdout.read() if proc.stdout else ""
    access = [line for line in output.splitlines() if "flowdeck.access" in line]
    assert any("GET /jobs 200" in line and "principal=alice" in line for line in access), output
    assert any("GET /jobs 401" in line and "principal=-" in line for line in access), output
    for secret in ("s3cret-pw", "wrong-pw", "query-secret", "YWxpY2"):
        assert secret not in output


def test_the_access_log_is_off_by_default(tmp_path: Path) -> None:
    with serving(tmp_path, [*FLOWDECK, "api"]) as (url, proc):
        assert httpx.get(f"{url}/jobs").status_code == 200
    assert "flowdeck.access" not in (proc.stdout.read() if proc.stdout else "")


BROKEN_ROUTE = textwrap.dedent(
    """
    import asyncio, logging, sys
    from flowdeck.api.app import create_app
    from flowdeck.api.server import serve
    from flowdeck.settings import Settings

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    settings = Settings(port=int(sys.argv[2]))
    app = create_app(settings)

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a defect in a route")

    asyncio.run(serve(app, settings))
    """
)


def test_a_500_is_logged_once_with_its_traceback(tmp_path: Path) -> None:
    script = tmp_path / "broken_app.py"
    script.write_text(BROKEN_ROUTE)
    with serving(tmp_path, [sys.executable, str(script)], FLOWDECK_ACCESS_LOG="true") as (url, proc):
        answer = httpx.get(f"{url}/broken")
    assert answer.status_code == 500
    output = proc.stdout.read() if proc.stdout else ""
    assert output.count("Traceback") == 1, output
    assert output.count("RuntimeError: a defect in a route") == 1, output
    assert "GET /broken 500" in output
