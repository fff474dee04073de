"""Sample sheets: CSV or TSV files whose rows become one run each.

The header names the pipeline's parameters (compared as relaxed mode compares
keys: ``Sample ID`` is ``sample_id``). Every cell is text, so rows are
validated in relaxed mode (numbers, booleans, empty cell = absent); a cell of a
list parameter holds its items separated by ``;``. Parameters shared by every
row come as ``common`` and must not also be columns. Blank lines and lines
starting with ``#`` are skipped.

Errors: a sheet over ``max_bytes`` or with more than ``max_rows`` rows is
PayloadTooLarge; undecodable text or an unreadable format is InvalidInput; an
empty sheet, unknown, duplicate or missing required columns, duplicate sample
ids and invalid rows are ValidationFailed, every problem with a pointer:
``/columns/2`` for a header cell, ``/rows/7/fastq_r1`` for a cell (rows count
from 0, after the header), ``/common/caller`` for a shared parameter. A problem
in the file also names its line (``line 9: ...``, counting every line of the
file from 1, as an editor does). Column problems do not hide row problems: the
rows are checked with the columns that could be read, and both are listed.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowdeck.errors import InvalidInput, PayloadTooLarge, Problem, ValidationFailed
from flowdeck.services.pipelines.parameters import normalize_key, pointer

if TYPE_CHECKING:
    from flowdeck.services.pipelines.catalog import Pipeline

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ROWS = 10_000
MAX_PROBLEMS = 500
LIST_SEPARATOR = ";"
_TRUNCATED = Problem("/rows", f"more problems not shown: only the first {MAX_PROBLEMS} are listed", "truncated")
_KINDS = {
    "csv": "csv",
    "text/csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "text/tab-separated-values": "tsv",
}


@dataclass(frozen=True)
class SampleSheet:
    """A parsed, validated sheet: one resolved parameter mapping per row."""

    format: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    sample_ids: list[str | None]


def parse_samplesheet(
    data: bytes | str,
    pipeline: Pipeline,
    *,
    kind: str | None = None,
    common: Mapping[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SampleSheet:
    """Parse ``data`` (CSV or TSV; ``kind`` None sniffs it) and validate every row."""
    text = _decode(data, max_bytes)
    fmt = _format(text, kind)
    records = _records(text, fmt)
    if not records:
        raise ValidationFailed(
            "the sample sheet is empty",
            [Problem("", "the sample sheet is empty: it needs a header line and at least one row", "empty")],
        )
    (header_line, header), body = records[0], records[1:]
    common = dict(common or {})
    columns, column_problems = _columns(header, header_line, pipeline, common)
    if not body:
        raise ValidationFailed(
            "the sample sheet has no rows",
            [*column_problems, Problem("/rows", "the sample sheet has a header but no rows", "minItems")],
        )
    if len(body) > max_rows:
        raise PayloadTooLarge(
            f"the sample sheet has {len(body)} rows; a request may have at most {max_rows} (setting max_request_runs)",
            limit=max_rows,
        )
    rows, row_problems = _rows(body, columns, pipeline, common)
    if column_problems or row_problems:
        missing = _missing_columns(columns, pipeline, common)
        problems = column_problems + [p for p in row_problems if not _reported_missing(p, missing)]
        raise ValidationFailed(f"the sample sheet for {pipeline.name} has problems", problems)
    id_name = pipeline.sample_id_parameter
    ids = [str(row[id_name]) if id_name and id_name in row else None for row in rows]
    return SampleSheet(fmt, tuple(c for c in columns if c is not None), rows, ids)


def _decode(data: bytes | str, max_bytes: int) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        size = len(raw)
        raise PayloadTooLarge(f"the sample sheet is {size} bytes; the limit is {max_bytes}", limit=max_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the sample sheet is not UTF-8 text (bad byte at offset {exc.start})") from None


def _format(text: str, kind: str | None) -> str:
    if kind is not None:
        try:
            return _KINDS[kind.strip().lower().split(";")[0].strip()]
        except KeyError:
            raise InvalidInput(f"sample sheet type {kind!r} is not csv or tsv") from None
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return "tsv" if "\t" in line else "csv"
    return "csv"


def _records(text: str, fmt: str) -> list[tuple[int, list[str]]]:
    """Each record with the file line it starts on (a quoted cell may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    records: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for cells in reader:
            if any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#"):
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"the sample sheet is not valid {fmt.upper()} (line {reader.line_num}): {exc}") from None
    return records


def _columns(
    header: list[str], line: int, pipeline: Pipeline, common: dict[str, Any]
) -> tuple[list[str | None], list[Problem]]:
    """The parameter each header cell names (None where it names none), and every header problem."""
    known = pipeline.model.properties
    index = {normalize_key(name): name for name in known}
    columns: list[str | None] = []
    problems: list[Problem] = []
    for i, cell in enumerate(header):
        name = cell.strip() if cell.strip() in known else index.get(normalize_key(cell), "")
        where = f"/columns/{i}"
        message = ""
        if not cell.strip():
            message, rule = f"column {i + 1} has no name", "name"
        elif not name:
            message = f"column {cell.strip()!r} is not a parameter of {pipeline.name} (parameters: {', '.join(known)})"
            rule = "additionalProperties"
        elif name in columns:
            message, rule = f"column {name!r} appears twice", "uniqueItems"
        elif name in common:
            message, rule = f"column {name!r} is also given as a common parameter", "conflict"
        if message:
            problems.append(Problem(where, f"line {line}: {message}", rule))
        columns.append(None if message else name)
    problems += [
        Problem("/columns", f"line {line}: missing required column {name!r}", "required")
        for name in _missing_columns(columns, pipeline, common)
    ]
    return columns, problems


def _missing_columns(columns: list[str | None], pipeline: Pipeline, common: dict[str, Any]) -> list[str]:
    """Required parameters that no column, common parameter or default gives."""
    given = {c for c in columns if c} | set(common) | set(pipeline.model.defaults)
    return [name for name in pipeline.model.required if name not in given]


def _reported_missing(problem: Problem, missing: list[str]) -> bool:
    """A row's "required" problem for a column already reported missing (once is enough)."""
    name = problem.pointer.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    return problem.rule == "required" and name in missing


def _rows(
    body: list[tuple[int, list[str]]], columns: list[str | None], pipeline: Pipeline, common: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    rows: list[dict[str, Any]] = []
    found: dict[Problem, None] = {}  # ordered set: a bad common parameter is reported once
    first_use: dict[str, int] = {}
    id_name = pipeline.sample_id_parameter
    for i, (line, cells) in enumerate(body):
        if len(found) >= MAX_PROBLEMS:
            found[_TRUNCATED] = None
            break
        if len(cells) > len(columns):
            message = f"line {line}: the row has {len(cells)} cells; the header has {len(columns)} columns"
            found[Problem(f"/rows/{i}", message, "columns")] = None
            continue
        params = _row_parameters(cells, columns, pipeline, common)
        try:
            row = pipeline.validate(params, strict=False, prefix=f"/rows/{i}")
        except ValidationFailed as exc:
            found.update((_located(p, i, line, common), None) for p in exc.problems)
            continue
        rows.append(row)
        if id_name and id_name in row:
            sample = str(row[id_name])
            if sample in first_use:
                where = f"/rows/{i}" + pointer([id_name])
                message = f"line {line}: {id_name} {sample!r} is already used by /rows/{first_use[sample]}"
                found[Problem(where, message, "unique")] = None
            first_use.setdefault(sample, i)
    return rows, list(found)


def _row_parameters(
    cells: list[str], columns: list[str | None], pipeline: Pipeline, common: dict[str, Any]
) -> dict[str, Any]:
    params = copy.deepcopy(common)
    for name, cell in zip(columns, cells, strict=False):
        value = cell.strip()
        if name is None or not value:
            continue
        if pipeline.model.is_array(name):
            params[name] = [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]
        else:
            params[name] = value
    return params


def _located(problem: Problem, row: int, line: int, common: dict[str, Any]) -> Problem:
    """A row's problem with its file line; one in a shared parameter points at /common instead
    (it is the same in every row, so it has no line)."""
    relative = problem.pointer[len(f"/rows/{row}") :]
    name = relative[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")
    if relative and name in common:
        return Problem("/common" + relative, problem.message, problem.rule)
    return Problem(problem.pointer, f"line {line}: {problem.message}", problem.rule)
