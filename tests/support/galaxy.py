"""A real Galaxy server for the test suite, started from the project's own scripts.

``galaxy_session()`` installs Galaxy once (``scripts/galaxy/install.sh``, cached in
``$FLOWDECK_GALAXY_VENV``), starts it on a free loopback port in a temporary root
(``scripts/galaxy/up.sh``), imports the test workflows with the user's key, yields a
:class:`GalaxyServer`, and stops it (``scripts/galaxy/down.sh``) at the end.

Environment: ``FLOWDECK_GALAXY_CELERY`` (default 1: faster jobs, more memory),
``FLOWDECK_GALAXY_PORTS`` (default ``8089-8099``), ``FLOWDECK_GALAXY_KEEP`` (1 = keep the
root folder for debugging), ``FLOWDECK_GALAXY_REUSE`` (the root of a Galaxy already started
with ``up.sh``: used as it is, neither started nor stopped; for development).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "galaxy"
WORKFLOWS = SCRIPTS / "workflows"


@dataclass
class GalaxyServer:
    """A running test Galaxy and what the tests need from it."""

    url: str
    api_key: str
    root: Path
    port: int
    workflow_ids: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop Galaxy (the data stays, so ``start()`` resumes where it was)."""
        _run_script("down.sh", self.env)

    def start(self) -> None:
        """Start Galaxy again on the same root and port."""
        _run_script("up.sh", self.env)

    def log_tail(self, lines: int = 60) -> str:
        log = self.root / "logs" / "galaxy.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def free_port(candidates: range) -> int:
    """The first port of ``candidates`` nobody listens on at 127.0.0.1."""
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


def _port_range() -> range:
    low, _, high = os.environ.get("FLOWDECK_GALAXY_PORTS", "8089-8099").partition("-")
    return range(int(low), int(high or low) + 1)


def _run_script(name: str, env: dict[str, str]) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(SCRIPTS / name)], env={**os.environ, **env}, capture_output=True, text=True, timeout=1200
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    print(f"[galaxy] {name} took {time.monotonic() - started:.1f}s")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def import_workflows(url: str, api_key: str) -> dict[str, str]:
    """Import every ``workflows/*.gxwf.yml`` once; returns workflow name -> id."""
    from bioblend.galaxy import GalaxyInstance

    gi = GalaxyInstance(url, key=api_key)
    gi.timeout = 60
    existing = {wf["name"]: wf["id"] for wf in gi.workflows.get_workflows()}
    ids: dict[str, str] = {}
    for path in sorted(WORKFLOWS.glob("*.gxwf.yml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        name = document["label"]
        ids[name] = existing.get(name) or gi.workflows.import_workflow_dict(document)["id"]
    return ids


@contextmanager
def galaxy_session() -> Iterator[GalaxyServer]:
    """Install (cached), start, yield, stop."""
    reuse = os.environ.get("FLOWDECK_GALAXY_REUSE")
    if reuse:
        values = read_env_file(Path(reuse) / "galaxy.env")
        port = int(values["GALAXY_URL"].rsplit(":", 1)[1])
        env = {"GALAXY_ROOT": reuse, "GALAXY_PORT": str(port), "GALAXY_WITH_CELERY": "1"}
        server = GalaxyServer(values["GALAXY_URL"], values["GALAXY_API_KEY"], Path(reuse), port, env=env)
        server.workflow_ids = import_workflows(server.url, server.api_key)
        yield server
        return
    root = Path(tempfile.mkdtemp(prefix="flowdeck-galaxy-"))
    port = free_port(_port_range())
    env = {
        "GALAXY_ROOT": str(root),
        "GALAXY_PORT": str(port),
        "GALAXY_WITH_CELERY": os.environ.get("FLOWDECK_GALAXY_CELERY", "1"),
    }
    _run_script("install.sh", env)
    try:
        _run_script("up.sh", env)
        values = read_env_file(root / "galaxy.env")
        server = GalaxyServer(values["GALAXY_URL"], values["GALAXY_API_KEY"], root, port, env=env)
        server.workflow_ids = import_workflows(server.url, server.api_key)
        yield server
    finally:
        _run_script("down.sh", env)
        if os.environ.get("FLOWDECK_GALAXY_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
