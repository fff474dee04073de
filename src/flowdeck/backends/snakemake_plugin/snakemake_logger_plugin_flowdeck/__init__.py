"""Snakemake logger plugin ``--logger flowdeck``: job events as JSON lines.

Loaded inside the Snakemake process only (the backend puts the folder above this
package on its PYTHONPATH), never imported by flowdeck itself. Each job event is
appended as one JSON object to the file named by ``FLOWDECK_SNAKEMAKE_EVENTS``,
flushed at once so the backend can follow a running workflow.
"""

from __future__ import annotations

import json
import os
import time
from logging import LogRecord
from typing import IO, Any

from snakemake_interface_logger_plugins.base import LogHandlerBase

# The record attributes worth keeping, per Snakemake's LogEvent values.
_FIELDS = ("jobid", "job_id", "jobs", "rule_name", "output", "log", "wildcards", "shellcmd")
_EVENTS = frozenset({"job_info", "job_started", "job_finished", "job_error", "error"})


class LogHandler(LogHandlerBase):
    """Appends job events to the flowdeck events file."""

    _stream: IO[str] | None = None

    def __post_init__(self) -> None:
        path = os.environ.get("FLOWDECK_SNAKEMAKE_EVENTS")
        self._stream = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def emit(self, record: LogRecord) -> None:
        event = str(getattr(record, "event", "") or "")
        if self._stream is None or event not in _EVENTS:
            return
        line: dict[str, Any] = {"event": event, "time": time.time()}
        for name in _FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if event == "error":
            line["msg"] = record.getMessage()
        self._stream.write(json.dumps(line, default=str) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
