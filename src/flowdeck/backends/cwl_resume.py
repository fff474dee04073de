"""Resuming a cwltool run from its step cache (``--cachedir``).

Every cwltool run keeps its steps' outputs in ``cache/`` of its run folder, one folder per
step execution named by cwltool's cache key (the command line, the input files' sizes and
checksums, and the requirements that change a result), beside ``<key>.status`` holding the
step's end (``success``). Resuming puts the old run's *successful* entries into the new
run's cache before cwltool starts (hard links, copies where links fail): cwltool then finds
them and runs only the steps whose key is not there. A failed or killed step's partial output
is never taken. The new run never writes into the old run's folder.

Cache keys name input files by their path relative to ``--basedir``: flowdeck gives the run's
own folder, so the same attachment (or a re-used step's output) has the same key in every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flowdeck.backends.local.launcher import control_dir
from flowdeck.backends.local.records import write_json
from flowdeck.backends.snakemake_resume import RESUMED, place

CACHE = "cache"


def seed_cache(old: Path, rundir: Path) -> list[str]:
    """Link the successful steps of ``old``'s cache into ``rundir``'s; the cache keys taken."""
    source, target = old / CACHE, rundir / CACHE
    taken: list[str] = []
    for status in sorted(source.glob("*.status")) if source.is_dir() else []:
        key = status.name.removesuffix(".status")
        entry = source / key
        if _status(status) != "success" or not entry.is_dir() or entry.is_symlink():
            continue
        place(entry, target / key)
        # cwltool opens the status file for appending: the new run's own file, not a link.
        shutil.copyfile(status, target / status.name)
        taken.append(key)
    write_json(control_dir(rundir) / RESUMED, {"from": str(old), "cache": taken})
    return taken


def _status(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
