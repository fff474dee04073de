"""Shared pieces of the benchmarks: servers in their own processes, the load generator, memory readings.

The load generator is ``hey`` (Debian package ``hey``), a separate process from every server; it
only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from flowdeck.backends.local.procfs import descendants

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WES = "/ga4gh/wes/v1"
BOUNDARY = "flowdeckbenchboundary"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak RSS) of the server process, in MB."""
        return read_memory(self.pid)


def read_memory(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def flowdeck_env(data_dir: Path, port: int) -> dict[str, str]:
    """The embedded default (SQLite in data_dir, local storage), the demo backend only, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(data_dir),
            "FLOWDECK_PORT": str(port),
            "FLOWDECK_HOST": "127.0.0.1",
            "FLOWDECK_BACKENDS": "demo",
            "FLOWDECK_LOG_LEVEL": "WARNING",
        }
    )
    return env


@contextmanager
def serve(command: Sequence[str], env: dict[str, str], port: int, ready_path: str) -> Iterator[Server]:
    """Start a server process, wait until it answers ``ready_path``, stop it on exit."""
    process = subprocess.Popen(list(command), env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
            try:
                if httpx.get(server.url + ready_path, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def flowdeck_server(data_dir: Path) -> AbstractContextManager[Server]:
    """``flowdeck api``: the real service, as an operator starts it."""
    port = free_port()
    return serve([str(BIN / "flowdeck"), "api"], flowdeck_env(data_dir, port), port, WES + "/service-info")


def bare_server() -> AbstractContextManager[Server]:
    """The bare FastAPI endpoints (bench/bare_app.py) behind the same uvicorn settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update({"FLOWDECK_PORT": str(port), "FLOWDECK_LOG_LEVEL": "WARNING"})
    return serve([sys.executable, str(ROOT / "bench" / "bare_app.py")], env, port, "/status")


@dataclass
class Load:
    """What one ``hey`` run measured."""

    requests_per_second: float
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    command: str


def hey(
    url: str,
    requests: int,
    concurrency: int,
    *,
    body: Path | None = None,
    content_type: str | None = None,
    timeout: int = 20,
) -> Load:
    """One bounded run of ``hey`` (``requests`` requests, ``concurrency`` workers, ``timeout``
    seconds for each request)."""
    if requests % concurrency:
        raise ValueError("hey drops the remainder of requests / concurrency: use a multiple")
    if shutil.which("hey") is None:
        raise RuntimeError("the load generator 'hey' is missing: apt-get install -y hey")
    command = ["hey", "-n", str(requests), "-c", str(concurrency), "-t", str(timeout)]
    if body is not None:
        command += ["-m", "POST", "-D", str(body), "-T", content_type or "application/octet-stream"]
    command.append(url)
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    if sum(statuses.values()) != requests:
        raise RuntimeError(f"hey answered {statuses} for {requests} requests:\n{output}")
    return Load(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        statuses=statuses,
        p50_ms=_percentile(output, 50),
        p99_ms=_percentile(output, 99),
        command=" ".join([*command[:-1], "URL"]).replace(str(body), body.name if body else ""),
    )


def _percentile(output: str, which: int) -> float:
    match = re.search(rf"{which}% in ([\d.]+) secs", output)
    return float(match.group(1)) * 1000 if match else float("nan")


def multipart_body(path: Path) -> str:
    """A WES RunWorkflow submission for the demo backend, with one small attachment; returns its content type."""
    fields = {
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://bench",
        "workflow_params": '{"sample": "S1", "threads": 4}',
        "tags": '{"bench": "submit"}',
    }
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="workflow_attachment"; filename="notes.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nsample sheet for the submit benchmark\r\n"
    )
    path.write_bytes(("".join(parts) + f"--{BOUNDARY}--\r\n").encode())
    return f"multipart/form-data; boundary={BOUNDARY}"


def count_runs(data_dir: Path) -> int:
    """Runs committed to the SQLite file with their attachment, read by a separate connection
    after the server answered."""
    query = "SELECT count(*) FROM runs WHERE EXISTS (SELECT 1 FROM run_attachments a WHERE a.run_id = runs.id)"
    with sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute(query).fetchone()[0])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- engine benchmarks (bench/engine_burst.py, bench/engine_single.py) ------------------------

ECHO_CWL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  message: {type: string, inputBinding: {position: 1}}
stdout: out.txt
outputs:
  out: {type: stdout}
"""


def flowdeck_up(
    data_dir: Path, backends: str = "cwltool", extra_env: dict[str, str] | None = None
) -> AbstractContextManager[Server]:
    """``flowdeck up`` (API and worker in one process) with the given backends and otherwise default settings."""
    port = free_port()
    env = flowdeck_env(data_dir, port)
    env.update({"FLOWDECK_BACKENDS": backends, **(extra_env or {})})
    return serve([str(BIN / "flowdeck"), "up"], env, port, WES + "/service-info")


def submit_echo_cwl(url: str, message: str) -> str:
    """One WES submission of the tiny echo tool (attached); returns the run id."""
    response = httpx.post(
        url + WES + "/runs",
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": "echo.cwl",
            "workflow_params": f'{{"message": "{message}"}}',
        },
        files={"workflow_attachment": ("echo.cwl", ECHO_CWL.encode(), "text/plain")},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["run_id"])


def tree_rss_mb(root: int) -> float:
    """Summed VmRSS of ``root`` and all its live descendants, in MB (one /proc scan)."""
    total = 0.0
    for pid in [root, *descendants(root)]:
        with suppress(OSError):  # ended between the scan and the read
            total += read_memory(pid).get("VmRSS", 0.0)
    return total


class PeakTreeRss:
    """Samples :func:`tree_rss_mb` of a process every ``interval`` seconds in a thread; keeps the max."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import threading

        self.pid, self.interval, self.peak, self.samples = pid, interval, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakTreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
