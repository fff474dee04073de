"""Slurm jobs of a run: the environment the engine's Slurm commands need, and a last sweep.

Toil (``--batchSystem slurm``) and Snakemake (``--executor slurm``) submit a run's steps with
``sbatch`` from the run folder, so every Slurm job of a run has its working directory in that
folder. A sandboxed engine has no network, so it cannot reach slurmctld: such a run is refused
at submit (:func:`check_unsandboxed`) rather than failing in the worker. Toil cancels its own jobs
when it stops; :func:`cancel_jobs` is the backstop after a cancel: whatever is still queued
with its working directory inside the run folder is ``scancel``-ed, so nothing is left in
``squeue`` even when the engine died before it could clean up.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from flowdeck.errors import Problem, ValidationFailed
from flowdeck.settings import Settings

_TIMEOUT_SECONDS = 30


def slurm_env(settings: Settings) -> dict[str, str]:
    """``SLURM_CONF`` for the engine's ``sbatch``/``squeue``/``scancel`` when the site sets one."""
    return {"SLURM_CONF": str(settings.slurm_conf)} if settings.slurm_conf else {}


def check_unsandboxed(settings: Settings, engine: str, setting: str) -> None:
    """ValidationFailed (422) while the sandbox is on: the engine would submit to Slurm from a
    namespace without network (docs/cluster.md)."""
    if not settings.sandbox:
        return
    message = (
        f"this site runs {engine}'s steps on Slurm ({setting}) with the sandbox on, and a sandboxed "
        "engine has no network to reach slurmctld; the operator sets FLOWDECK_SANDBOX=false on "
        "Slurm workers and API (docs/cluster.md)"
    )
    raise ValidationFailed(message, [Problem("/workflow_engine", message, "slurm_sandbox")])


def _client_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **slurm_env(settings)}


def run_jobs(settings: Settings, rundir: Path) -> list[str]:
    """Ids of the queued or running Slurm jobs whose working directory is in ``rundir``."""
    result = subprocess.run(
        ["squeue", "-h", "-o", "%i\t%Z"],
        env=_client_env(settings),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=True,
    )
    root = rundir.resolve()
    found = []
    for line in result.stdout.splitlines():
        job_id, _, workdir = line.partition("\t")
        if workdir and (Path(workdir) == root or root in Path(workdir).parents):
            found.append(job_id.strip())
    return found


def cancel_jobs(settings: Settings, rundir: Path) -> list[str]:
    """``scancel`` the run's Slurm jobs; returns the ids that were still there.

    A Slurm that does not answer leaves the sweep undone (the engine's own cancel stands):
    a sync or a cancel never fails on it."""
    try:
        jobs = run_jobs(settings, rundir)
    except (OSError, subprocess.SubprocessError):
        return []
    if jobs:
        subprocess.run(
            ["scancel", *jobs], env=_client_env(settings), capture_output=True, timeout=_TIMEOUT_SECONDS, check=False
        )
    return jobs
