"""Resuming a Snakemake run: the finished steps of an ended run are put into the new run's folder
before Snakemake starts, and Snakemake's own incremental rerun then runs only what is missing.

Only outputs of jobs the old run's event log reports COMPLETE are taken (a failed or killed job's
partial output is never re-used), with Snakemake's metadata so that its rerun triggers (code,
parameters, inputs) see them as they were. Files are hard links where the file system allows
(no copy, the same inode: a step re-used is visibly the same file), copies with their times kept
otherwise. What was re-used is recorded in the control folder: the run's outputs and tasks
include it, marked re-used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import read_json, write_json
from flowdeck.backends.local.run_files import inside
from flowdeck.domain.runs import TaskInfo
from flowdeck.domain.states import State

RESUMED = "resumed.json"
METADATA = Path(".snakemake") / "metadata"


def seed(old: Path, rundir: Path, finished: dict[str, list[str]]) -> dict[str, list[str]]:
    """Link ``finished`` (rule → output paths, relative to ``old``) into ``rundir``; what was taken."""
    taken: dict[str, list[str]] = {}
    for rule, paths in finished.items():
        for raw in paths:
            source, target = inside(old / raw, old), rundir / raw
            if source is None or not source.exists() or inside(target, rundir) is None:
                continue  # gone since, or a path that leaves the run folder: Snakemake makes it again
            place(source, target)
            taken.setdefault(rule, []).append(raw)
    if (old / METADATA).is_dir():
        place(old / METADATA, rundir / METADATA)
    write_json(control_dir(rundir) / RESUMED, {"from": str(old), "outputs": taken})
    return taken


def reused(rundir: Path) -> dict[str, list[str]]:
    """The outputs this run took from the run it resumed (rule → paths); empty if it resumed none."""
    record: dict[str, Any] = read_json(control_dir(rundir) / RESUMED) or {}
    return {str(rule): [str(p) for p in paths] for rule, paths in (record.get("outputs") or {}).items()}


def reused_tasks(rundir: Path) -> list[TaskInfo]:
    """One completed task per re-used rule, named so the job view says it was not run again."""
    return [
        TaskInfo(backend_task_id=f"reused:{rule}", name=f"{rule} (re-used)", state=State.COMPLETE)
        for rule in reused(rundir)
    ]


def place(source: Path, target: Path) -> None:
    """``source`` (a file or a folder tree) at ``target`` as hard links, copies where links fail."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link, dirs_exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _link(source, target)


def _link(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        pass  # a seeding retried after a crash: the link is already there
    except OSError:  # another file system, or links refused: a copy, times kept (Snakemake's mtime trigger)
        shutil.copy2(source, target)
