"""Workflow attachments: safe names, and where a run's files live on disk."""

from __future__ import annotations

import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowdeck.errors import InvalidInput, PayloadTooLarge

MAX_ATTACHMENTS = 200


@dataclass(frozen=True)
class Attachment:
    """One uploaded file: its relative path inside the run and its bytes."""

    name: str
    content: bytes


def safe_name(raw: str | None) -> str:
    """A relative POSIX path with no parent references, or InvalidInput."""
    if not raw:
        raise InvalidInput("every workflow_attachment part needs a filename")
    if raw.isascii():  # NFC leaves ASCII as it is, and its only Cc characters are what isprintable() refuses
        name = raw.replace("\\", "/")
        controls = not name.isprintable()
    else:
        name = unicodedata.normalize("NFC", raw).replace("\\", "/")
        controls = "\x00" in name or any(unicodedata.category(ch) == "Cc" for ch in name)
    if controls:
        raise InvalidInput("attachment filename contains control characters")
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "" in parts or name.startswith("./"):
        raise InvalidInput(f"attachment filename {raw!r} must be a relative path without '..'")
    if len(name) > 512:
        raise InvalidInput("attachment filename is too long")
    # PurePosixPath drops "." parts ("a/./b" is "a/b"); without one, the name is its own normal form.
    return str(PurePosixPath(name)) if "." in parts else name


def check_all(attachments: list[Attachment], max_bytes: int) -> None:
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} workflow attachments are accepted")
    names = [a.name for a in attachments]
    if len(set(names)) != len(names):
        raise InvalidInput("two workflow attachments have the same filename")
    if sum(len(a.content) for a in attachments) > max_bytes:
        raise PayloadTooLarge(f"workflow attachments exceed {max_bytes} bytes")


@dataclass(frozen=True)
class RunFolder:
    """A run's folder: ``attachments/`` as uploaded, ``work/`` for the engine."""

    root: Path

    @property
    def attachments(self) -> Path:
        return self.root / "attachments"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def write(self, attachments: list[Attachment]) -> None:
        """Write the uploaded files into ``attachments/``: at dispatch, from the database (their
        record), and at submit when an engine's validation reads them. Existing files are
        overwritten. ``work/`` is made at dispatch (services.handles.prepare_spec)."""
        if not attachments:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.attachments.mkdir(exist_ok=True)
        for attachment in attachments:
            target = self.attachments / attachment.name
            if "/" in attachment.name:
                target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(attachment.content)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def contains(self, path: Path) -> bool:
        """True when ``path`` (symlinks resolved) lies inside this folder."""
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True


def run_folder(runs_dir: Path, run_id: str) -> RunFolder:
    return RunFolder(runs_dir / run_id)
