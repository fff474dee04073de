"""What the CLI's end-to-end tests share: a real ``flowdeck up`` server, the CLI as a subprocess
(plain pipes, or a pseudo-terminal), and a small terminal screen to read what a pty showed."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.test_up import flowdeck_env
from tests.support.network import free_port

CLI = [sys.executable, "-m", "flowdeck.cli.main"]


def server_env(data: Path, **extra: str) -> dict[str, str]:
    """``flowdeck up``'s environment: demo runs of 0.5 to 1 s that always succeed, and cwltool."""
    return {**flowdeck_env(data), "FLOWDECK_BACKENDS": "demo,cwltool", **extra}


@contextmanager
def running_server(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """A ``flowdeck up`` subprocess answering on a free port; stopped with SIGINT afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "up", "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "flowdeck up did not answer within 60 s"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def client_env(server: str, config_home: Path) -> dict[str, str]:
    """The client's environment: no FLOWDECK_ credentials, its own config folder, not a colour terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_") and k != "NO_COLOR"}
    return {**env, "FLOWDECK_SERVER": server, "XDG_CONFIG_HOME": str(config_home), "TERM": "xterm"}


def run_in_pty(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdout and stderr: its exit code and everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), b"".join(chunks).decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


_CSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw`` (text, CR, LF and the CSI F, J, K and m the CLI uses)."""
    lines, row, col, i = [""], 0, 0, 0
    while i < len(raw):
        if match := _CSI.match(raw, i):
            count, command = int(match[1] or 1), match[2]
            if command == "F":
                row, col = max(0, row - count), 0
            elif command in "JK":
                lines[row] = lines[row][:col]
                if command == "J":
                    del lines[row + 1 :]
            i = match.end()
            continue
        char = raw[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            lines.extend([""] * (row + 1 - len(lines)))
        else:
            lines[row] = lines[row][:col].ljust(col) + char + lines[row][col + 1 :]
            col += 1
        i += 1
    return [line.rstrip() for line in lines if line.strip()]
