"""Resuming a Toil run: a restart (``--restart``) from a copy of the old run's job store.

Toil deletes a run's job store when the run succeeds (``--clean onSuccess``) and keeps it after
a failure or a cancel: it holds the workflow's remaining jobs and the files the finished ones
wrote. Resuming puts that job store into the new run's folder (hard links, copies where links
fail: Toil replaces a job store file by writing a new one and renaming it, never in place, so
the old run's files are not changed) and starts Toil with ``--restart``: it runs only the jobs
that had not finished. The steps that had finished are recorded in the control folder, so the
new run's tasks name them, marked re-used.

Toil's pickled jobs name the job store they were made in by its path (a promised value is read
back through it): the old run's. In the sandbox that path shows the new run's copy (a bind
mount), so the new run reads and writes only its own folder; the paths of earlier job stores
in a chain of resumes are carried along. Without the sandbox, Toil reads those values from the
old run's job store, in place (only reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import read_json, write_json
from flowdeck.backends.snakemake_resume import RESUMED, place
from flowdeck.domain.runs import TaskInfo
from flowdeck.domain.states import State

JOB_STORE = "js"
_MARK = " (re-used)"


def seed_job_store(old: Path, rundir: Path, finished: list[str]) -> bool:
    """Link ``old``'s job store into ``rundir`` with the steps it had ``finished``; False when
    it has none (the old run succeeded, or never got as far as making one): a fresh start."""
    source = old / JOB_STORE
    if not (source / "jobs").is_dir():
        write_json(control_dir(rundir) / RESUMED, {"from": str(old), "steps": []})
        return False
    place(source, rundir / JOB_STORE)
    steps = list(dict.fromkeys(name.removesuffix(_MARK) for name in finished))
    stores = [str(source), *job_store_aliases(old)]
    write_json(control_dir(rundir) / RESUMED, {"from": str(old), "steps": steps, "job_stores": stores})
    return True


def job_store_aliases(rundir: Path) -> list[str]:
    """The paths by which the jobs in this run's restarted job store name it (the runs it resumed)."""
    record: dict[str, Any] = read_json(control_dir(rundir) / RESUMED) or {}
    return [str(path) for path in record.get("job_stores") or []]


def alias_binds(rundir: Path) -> list[list[str]]:
    """Sandbox binds showing this run's job store at each path its jobs know it by."""
    own = str(rundir / JOB_STORE)
    return [["rw", own, alias] for alias in job_store_aliases(rundir) if restarts(rundir)]


def restarts(rundir: Path) -> bool:
    """Whether this run goes on from a job store put in its folder by :func:`seed_job_store`."""
    return (rundir / JOB_STORE / "jobs").is_dir()


def reused_tasks(rundir: Path) -> list[TaskInfo]:
    """One completed task per step the restarted job store had already finished."""
    record: dict[str, Any] = read_json(control_dir(rundir) / RESUMED) or {}
    return [
        TaskInfo(backend_task_id=f"reused:{name}", name=f"{name}{_MARK}", state=State.COMPLETE)
        for name in record.get("steps") or []
    ]
