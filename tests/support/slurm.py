"""A real one-node Slurm cluster for the test suite, started from the project's own scripts.

``slurm_session()`` starts munged, slurmctld and slurmd on loopback in a temporary root
(``scripts/slurm/up.sh``) on free ports, yields a :class:`SlurmCluster`, and stops it
(``scripts/slurm/down.sh``) at the end. Needs root and Debian's slurm-wlm and munge
(``make debs``); a missing piece is an error, never a skip. ``configless=True`` starts it
configless (``SLURM_CONFIGLESS=1``): Slurm commands without ``SLURM_CONF`` then find the config
through slurmd's cache at ``/run/slurm/conf``, as the steps of Snakemake's Slurm executor need.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "slurm"


@dataclass
class SlurmCluster:
    """A running test cluster: its root folder and the SLURM_CONF its commands need."""

    root: Path
    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, *argv: str) -> str:
        """A Slurm client command's stdout (``squeue``, ``scontrol``...)."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=True, timeout=30).stdout

    def queued(self) -> list[str]:
        """Ids of the jobs squeue still lists (pending, running, completing)."""
        return self.command("squeue", "-h", "-o", "%i").split()

    def finished(self) -> list[dict[str, str]]:
        """Every job that ended (JobId, Name, JobState, WorkDir...), from the job completion log."""
        path = self.root / "log" / "jobcomp.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in lines]


def _script(name: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPTS / name)], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/slurm/{name} failed ({result.returncode}):\n{result.stderr[-4000:]}")


@contextmanager
def slurm_session(*, configless: bool = False) -> Iterator[SlurmCluster]:
    """Start a cluster in a temporary root, yield it, stop it and remove the root."""
    root = Path(tempfile.mkdtemp(prefix="flowdeck-slurm-"))
    env = {"SLURM_ROOT": str(root), "SLURM_CTLD_PORT": str(free_port()), "SLURM_D_PORT": str(free_port())}
    env["SLURM_CONFIGLESS"] = "1" if configless else "0"
    try:
        _script("up.sh", env)
        yield SlurmCluster(root, root / "slurm.conf")
    finally:
        _script("down.sh", env)
        if os.environ.get("FLOWDECK_SLURM_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
