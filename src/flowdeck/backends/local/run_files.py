"""Files a local engine is given and leaves behind: the workflow and inputs among a run's
attachments, the outputs it names inside the run directory, its logs and times."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowdeck.backends.checksums import file_checksum
from flowdeck.domain.runs import OutputFile, RunSpec
from flowdeck.errors import InvalidInput

_URL_SCHEMES = ("https://", "http://")


def is_url(value: str) -> bool:
    """True for a remote location the engine fetches itself."""
    return value.startswith(_URL_SCHEMES)


def inside(path: Path, root: Path) -> Path | None:
    """``path``'s real location when it lies inside ``root`` (symlinks followed), else None."""
    real = path.resolve()
    return real if real.is_relative_to(root.resolve()) else None


def resolve_workflow(spec: RunSpec, allowed_prefixes: Sequence[str]) -> str:
    """The workflow to run: an allowed https:// URL, or a file among the run's attachments."""
    url = spec.workflow_url.strip()
    if is_url(url):
        if not any(url.startswith(prefix) for prefix in allowed_prefixes):
            raise InvalidInput(f"workflow_url {url!r} is not under an allowed prefix")
        return url
    return str(attachment(url, spec, what="workflow_url"))


def attachment(value: str, spec: RunSpec, what: str) -> Path:
    """A path (relative to the attachments, or absolute inside them) that must exist."""
    if "://" in value and not value.startswith("file://"):
        raise InvalidInput(f"{what} {value!r}: unsupported scheme")
    raw = value.removeprefix("file://")
    real = inside(spec.attachments_dir / raw, spec.attachments_dir)
    if real is None:
        raise InvalidInput(f"{what} {value!r} points outside the run's attachments")
    if not real.exists():
        raise InvalidInput(f"{what} {value!r} is not among the run's attachments")
    return real


def named_paths(value: Any) -> Iterator[str]:
    """Every file location an output object names (CWL File objects, path strings)."""
    if isinstance(value, dict):
        if value.get("class") in {"File", "Directory"}:
            location = value.get("path") or value.get("location")
            if isinstance(location, str):
                yield location.removeprefix("file://")
            for extra in value.get("secondaryFiles") or []:
                yield from named_paths(extra)
            return
        for item in value.values():
            yield from named_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from named_paths(item)
    elif isinstance(value, str) and value.startswith(("/", "file://")):
        yield value.removeprefix("file://")


def output_files(paths: Iterable[str], rundir: Path) -> tuple[list[OutputFile], list[str]]:
    """Size and checksum of every named file inside the run dir; notes on those skipped."""
    root = rundir.resolve()
    found: dict[Path, OutputFile] = {}
    skipped: list[str] = []
    for raw in paths:
        real = inside(root / raw, root)
        if real is None:
            skipped.append(f"output {raw} lies outside the run directory: not listed")
            continue
        # Named as the engine named it (run/out/x.txt), located where it really is.
        named = Path(os.path.normpath(root / raw))
        label = named.relative_to(root) if named.is_relative_to(root) else real.relative_to(root)
        members = sorted(p for p in real.rglob("*") if p.is_file()) if real.is_dir() else [real]
        for member in members:
            kept = inside(member, root)
            if kept is None or not kept.is_file() or kept in found:
                continue
            found[kept] = OutputFile(
                name=str(label / member.relative_to(real)) if member != real else str(label),
                location=str(kept),
                size=kept.stat().st_size,
                checksum=file_checksum(kept),
            )
    return list(found.values()), skipped


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last non-empty lines of a text file (empty when missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def file_time(path: Path) -> datetime | None:
    """A file's modification time, or None when it is missing."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
