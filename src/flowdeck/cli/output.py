"""One way for every client command to print what the server answered: ``-o table|json|yaml``.

``table`` is for people: aligned columns (a bold header on a terminal, plain text otherwise), a
key/value listing for one object, and a ``more: --page-token …`` line on stderr when the server has
another page. ``json`` and ``yaml`` print the server's answer whole, for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "yaml")


def add_output(parser: argparse.ArgumentParser) -> None:
    """Add ``-o/--output``."""
    parser.add_argument("-o", "--output", choices=FORMATS, default="table", help="table (default), json or yaml")


def styled(stream: TextIO = sys.stdout) -> bool:
    """Whether to style output: a terminal, and ``NO_COLOR`` unset."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: list[str], bold: bool = False) -> str:
    """Rows as an aligned text table."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    lines = [f"\x1b[1m{header}\x1b[0m" if bold else header]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def listing(body: Mapping[str, Any], bold: bool = False) -> str:
    """One object as ``key  value`` lines (nested values as compact JSON; empty ones and links left
    to ``-o json``)."""
    body = {k: v for k, v in body.items() if k != "links" and v not in (None, "", [], {})}
    width = max((len(k) for k in body), default=0)
    return "\n".join(
        (f"\x1b[1m{k.ljust(width)}\x1b[0m" if bold else k.ljust(width)) + "  " + _cell(v) for k, v in body.items()
    )


def dumps(body: Any, fmt: str) -> str:
    """``body`` as JSON or YAML text."""
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(body, sort_keys=False, allow_unicode=True)).rstrip("\n")
    return json.dumps(body, indent=2)


def emit(
    args: argparse.Namespace,
    body: Any,
    rows: Sequence[Mapping[str, Any]],
    columns: list[str],
    more: str | None = None,
    detail: bool = False,
) -> None:
    """Print ``body`` as asked: whole for json/yaml; for table, ``rows`` in ``columns`` (or, with
    ``detail``, ``body`` as a listing) and a paging hint when ``more`` is a next page token."""
    fmt = getattr(args, "output", "table")
    if fmt == "json" and getattr(args, "watch", False):
        print(json.dumps(body), flush=True)  # events follow, one a line: all of it is JSON Lines
        return
    if fmt != "table":
        print(dumps(body, fmt), flush=True)
        return
    print(listing(body, styled()) if detail else table(rows, columns, styled()), flush=True)
    if more:
        print(f"more: --page-token {more}", file=sys.stderr)


class Live:
    """A progress view: redrawn in place on a terminal; elsewhere, each new detail line once,
    then the summary line whenever it changes (so a log or a pipe reads as a history). With
    ``-o json`` it prints each event it is shown as one JSON object a line instead."""

    def __init__(self, fmt: str = "table", stream: TextIO = sys.stdout, limit: int = 30) -> None:
        self.stream, self.limit, self.json = stream, limit, fmt == "json"
        self.tty = styled(stream) and not self.json
        self._drawn = 0
        self._seen: set[str] = set()
        self._summary = ""

    def show(self, summary: str, details: Sequence[str] = (), event: Mapping[str, Any] | None = None) -> None:
        """Show ``summary`` and its ``details`` (one line each) as they are now, after ``event``."""
        if self.json:
            if event:
                self.stream.write(json.dumps(event) + "\n")
        elif self.tty:
            self._redraw(summary, details)
        else:
            self._append(summary, details)
        self.stream.flush()

    def _redraw(self, summary: str, details: Sequence[str]) -> None:
        lines = [f"\x1b[1m{summary}\x1b[0m", *details[: self.limit]]
        if len(details) > self.limit:
            lines.append(f"… and {len(details) - self.limit} more")
        # Back to the first line drawn last time, clear to the end of the screen, draw again.
        self.stream.write((f"\x1b[{self._drawn}F\x1b[J" if self._drawn else "") + "\n".join(lines) + "\n")
        self._drawn = len(lines)

    def _append(self, summary: str, details: Sequence[str]) -> None:
        for line in details:
            if line not in self._seen:
                self._seen.add(line)
                self.stream.write(line + "\n")
        if summary != self._summary:
            self._summary = summary
            self.stream.write(summary + "\n")
