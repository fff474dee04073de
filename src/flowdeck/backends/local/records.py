"""The launcher's records: small JSON files in a run's control folder, written atomically and read
by the worker, the launcher and the warm server alike."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing or half written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename): a reader never sees half a record."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def now() -> str:
    """The time now, as the records write it (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()


def write_exit(
    control: Path, code: int, cancel_requested: bool = False, start_error: str | None = None, limit: str | None = None
) -> None:
    """The run's exit record: written last, once nothing of the run is left."""
    record: dict[str, Any] = {"exit_code": code, "ended_at": now(), "cancel_requested": cancel_requested}
    if start_error:
        record["start_error"] = start_error
    if limit:
        record["limit"] = limit  # the sandbox ended the run at this limit
    write_json(control / "exit.json", record)
