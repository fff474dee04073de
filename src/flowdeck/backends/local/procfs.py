"""What /proc says about processes: start times, groups, descendants.

Standard library only: the launcher imports this in every run's own process.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot), or None if gone or a zombie."""
    fields = _stat(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def child_start_ticks(pid: int) -> int | None:
    """The start time of our own child, read right after it was started, zombie or not.

    A quick engine may have exited before its parent reads this: until the parent reaps it, its
    pid cannot be reused and /proc still holds its start time, which the run's records (crash
    re-attachment) need. Only None when the pid is not there at all.
    """
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """True when ``pid`` is a live process that started at ``ticks``."""
    return pid is not None and ticks is not None and start_ticks(pid) == ticks


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every live process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in {"Z", "X"}:
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    return sorted(pid for pid, (_, group) in _proc_table().items() if group == pgid)


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in _proc_table().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def wait_gone(pid: int, ticks: int | None) -> None:
    """Block until the process ``pid`` that started at ``ticks`` has ended (it need not be a child)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        # Checked by start time too: the pidfd may name a recycled pid if the process ended first.
        while is_alive(pid, ticks):
            if fd is None:
                time.sleep(0.1)
            else:
                select.select([fd], [], [], 1.0)
    finally:
        if fd is not None:
            os.close(fd)
