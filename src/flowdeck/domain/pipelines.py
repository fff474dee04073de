"""Pure value types of the pipeline catalog: versions and targets.

A *target* is what a pipeline runs on its backend: a CWL or WDL file, a
Snakefile, a Galaxy workflow (by name or id), a Galaxy tool (by id, at a pinned
version or the server's latest), a HealthOmics workflow id, or a labelled simulation. Which target kinds a backend accepts is fixed here, so a
catalog file that pairs a backend with the wrong kind of target is refused at
start-up rather than at run time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version (https://semver.org), ordered by semver precedence."""

    text: str
    release: tuple[int, int, int]
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-prerelease][+build]``; ValueError otherwise."""
        match = _SEMVER.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
        major, minor, patch, pre, _build = match.groups()
        return cls(text, (int(major), int(minor), int(patch)), tuple(pre.split(".")) if pre else ())

    @property
    def key(self) -> tuple[Any, ...]:
        # A pre-release sorts before its release; numeric identifiers sort
        # numerically and before alphanumeric ones (semver rule 11).
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (*self.release, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class TargetKind:
    """One way of naming what runs: its WES workflow type and whether it is a file."""

    workflow_type: str
    is_file: bool
    default_type_version: str


TARGET_KINDS: dict[str, TargetKind] = {
    "cwl": TargetKind("CWL", True, "v1.2"),
    "wdl": TargetKind("WDL", True, "1.0"),
    "snakefile": TargetKind("SMK", True, "9"),
    "galaxy_workflow": TargetKind("GALAXY", False, ""),
    "galaxy_workflow_id": TargetKind("GALAXY", False, ""),
    "galaxy_tool": TargetKind("GALAXY", False, "tool"),
    "omics_workflow_id": TargetKind("WDL", False, "1.0"),
    "simulation": TargetKind("DEMO", False, "1.0"),
}

# Which target kinds each backend runs. Mirrors backends.registry's names.
BACKEND_TARGETS: dict[str, tuple[str, ...]] = {
    "demo": ("simulation",),
    "cwltool": ("cwl",),
    "toil": ("cwl", "wdl"),
    "snakemake": ("snakefile",),
    "miniwdl": ("wdl",),
    "galaxy": ("galaxy_workflow", "galaxy_workflow_id", "galaxy_tool"),
    "omics": ("omics_workflow_id",),
}


@dataclass(frozen=True)
class Target:
    """What a pipeline runs: ``kind`` is a key of TARGET_KINDS, ``value`` as written,
    ``path`` the absolute file for file kinds, ``input`` the workflow input that
    receives the run's dataset (Galaxy). A ``galaxy_tool`` target also has ``tool_version``
    (None: the newest on the server) and ``use_cached_jobs`` (Galaxy may reuse an equal job)."""

    kind: str
    value: str
    workflow_type: str
    workflow_type_version: str
    path: str | None = None
    input: str | None = None
    tool_version: str | None = None
    use_cached_jobs: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The form handed to backends as ``RunSpec.pipeline_target``: ``path`` for
        file targets, ``workflow`` (a name or id) for the others."""
        target: dict[str, Any] = {
            "kind": self.kind,
            "workflow_type": self.workflow_type,
            "workflow_type_version": self.workflow_type_version,
        }
        if self.path is not None:
            target["path"] = self.path
        else:
            target["workflow"] = self.value
        if self.input is not None:
            target["input"] = self.input
        if self.kind == "galaxy_tool":
            target.update(tool=self.value, tool_version=self.tool_version, use_cached_jobs=self.use_cached_jobs)
        return target

    def public_dict(self) -> dict[str, Any]:
        """What clients are shown: the workflow as the catalog names it, never a server path."""
        shown = {key: value for key, value in self.as_dict().items() if key != "path"}
        shown["workflow"] = self.value
        return shown


class SpecError(Exception):
    """A catalog file's field is wrong. The loader adds the file name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
