"""The references registry: reference genomes and transcriptomes as named site resources.

An operator describes each reference in a YAML file under ``references_dir``
(docs/references.md): name, kind (``genome`` or ``transcriptome``), FASTA,
optional annotation, and where its indexes live. ``flowdeck references index
NAME`` builds the indexes once (bwa, samtools faidx and dict for a genome; salmon and
kallisto for a transcriptome); runs only read them.

A pipeline marks a parameter that names a reference with
``x-flowdeck-reference: genome`` (or ``transcriptome``) in its catalog schema.
:func:`resolve_references` checks such a parameter against the registry at
submit (unknown, wrong kind or unindexed: a 422 naming what exists) and returns
the reference's files, which the backend hands to the engine.

The registry is read from disk on every use: a few small files, and an index
built after the service started is seen at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.errors import ConfigurationError, FlowdeckError, NotFound, Problem

if TYPE_CHECKING:
    from flowdeck.services.pipelines.catalog import Pipeline
    from flowdeck.settings import Settings

MARK = "x-flowdeck-reference"
KINDS: dict[str, tuple[str, ...]] = {"genome": ("bwa", "faidx", "dict"), "transcriptome": ("salmon", "kallisto")}
# Where each index lives by default, beside the FASTA, and the files that show it is complete.
_DEFAULT_SUFFIX = {"bwa": "", "faidx": ".fai", "salmon": ".salmon_index", "kallisto": ".kallisto_index"}
_BWA_FILES = (".amb", ".ann", ".bwt", ".pac", ".sa")
FIELDS = ("name", "kind", "description", "fasta", "annotation", "indexes")


class IndexBuildFailed(FlowdeckError):
    """An index tool failed; the message carries its stderr's tail."""


@dataclass(frozen=True)
class Index:
    """One index of a reference: the tool that reads it and where it lives (bwa: a prefix)."""

    tool: str
    path: Path

    @property
    def built(self) -> bool:
        if self.tool == "bwa":
            return all(Path(f"{self.path}{suffix}").is_file() for suffix in _BWA_FILES)
        if self.tool == "salmon":
            return (self.path / "versionInfo.json").is_file()
        return self.path.is_file()


@dataclass(frozen=True)
class Reference:
    """One registered reference."""

    name: str
    kind: str
    fasta: Path
    source: Path
    description: str = ""
    annotation: Path | None = None
    indexes: tuple[Index, ...] = ()

    @property
    def missing(self) -> list[str]:
        """The tools whose index is not built yet."""
        return [index.tool for index in self.indexes if not index.built]

    @property
    def indexed(self) -> bool:
        return not self.missing

    def index(self, tool: str) -> Index:
        return next(index for index in self.indexes if index.tool == tool)

    def public_dict(self) -> dict[str, Any]:
        """What clients see: names and index status, never a server path."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "fasta": self.fasta.name,
            "annotation": self.annotation.name if self.annotation else None,
            "indexes": {index.tool: {"built": index.built} for index in self.indexes},
            "indexed": self.indexed,
        }

    def run_view(self) -> dict[str, Any]:
        """What a run's engine gets: the absolute paths of the files and indexes."""
        return {
            "name": self.name,
            "kind": self.kind,
            "fasta": str(self.fasta),
            "annotation": str(self.annotation) if self.annotation else None,
            "indexes": {index.tool: str(index.path) for index in self.indexes},
        }


class Registry:
    """The references of one ``references_dir``, by name."""

    def __init__(self, references: list[Reference]) -> None:
        self._by_name = {ref.name: ref for ref in sorted(references, key=lambda r: r.name)}

    def __iter__(self) -> Iterator[Reference]:
        return iter(self._by_name.values())

    def names(self, kind: str | None = None, *, indexed: bool = False) -> list[str]:
        return [r.name for r in self if (kind is None or r.kind == kind) and (r.indexed or not indexed)]

    def get(self, name: str) -> Reference:
        """One reference; NotFound naming the registered ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFound(f"no reference named {name!r}; references: {_listed(self.names())}") from None

    def find(self, name: str) -> Reference | None:
        return self._by_name.get(name)


def load_registry(settings: Settings) -> Registry:
    """Every reference file in ``settings.references_dir`` (none when it is not set)."""
    folder = settings.references_dir
    if folder is None:
        return Registry([])
    if not folder.is_dir():
        raise ConfigurationError(f"references_dir {folder} is not a folder", file=str(folder))
    references, problems = [], []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            references.append(parse_reference(path))
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    seen: dict[str, Path] = {}
    for ref in references:
        if ref.name in seen:
            problems.append(f"{ref.source}: name: {ref.name!r} is also defined in {seen[ref.name]}")
        seen.setdefault(ref.name, ref.source)
    if problems:
        raise ConfigurationError(f"references {folder}: {len(problems)} broken file(s):\n" + "\n".join(problems))
    return Registry(references)


def parse_reference(path: Path) -> Reference:
    """One reference file; ValueError names the field that is wrong."""
    import yaml  # first use: the API does not load PyYAML at start

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("a reference file must be a mapping of fields")
    unknown = sorted(str(key) for key in raw if key not in FIELDS)
    if unknown:
        raise ValueError(f"{unknown[0]}: is not a reference field; fields: {', '.join(FIELDS)}")
    name, kind = _text(raw, "name"), _text(raw, "kind")
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} must be one of {', '.join(KINDS)}")
    fasta = _file(path, _text(raw, "fasta"))
    annotation = _file(path, _text(raw, "annotation")) if raw.get("annotation") is not None else None
    given = raw.get("indexes") or {}
    if not isinstance(given, dict) or any(tool not in KINDS[kind] for tool in given):
        raise ValueError(f"indexes: a mapping of {' and/or '.join(KINDS[kind])} to paths (kind {kind})")
    indexes = tuple(
        Index(tool, _file(path, str(given[tool])) if tool in given else _default_index(fasta, tool))
        for tool in KINDS[kind]
    )
    description = str(raw.get("description") or "").strip()
    return Reference(name, kind, fasta, path, description, annotation, indexes)


def _default_index(fasta: Path, tool: str) -> Path:
    if tool == "dict":  # GATK looks for ref.dict beside ref.fa
        return fasta.with_suffix(".dict")
    return Path(f"{fasta}{_DEFAULT_SUFFIX[tool]}")


def _text(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field}: is required (a non-empty string)")
    return value.strip()


def _file(path: Path, value: str) -> Path:
    """A path relative to the reference file's folder, made absolute."""
    return (path.parent / value).resolve()


def _listed(names: list[str]) -> str:
    return ", ".join(names) or "none"


# --- pipelines' reference parameters


def reference_parameters(pipeline: Pipeline) -> dict[str, str]:
    """The parameters the pipeline marks as naming a reference, with the kind each wants."""
    properties = pipeline.model.schema.get("properties", {})
    return {name: str(spec[MARK]) for name, spec in properties.items() if isinstance(spec, dict) and MARK in spec}


def resolve_references(
    settings: Settings, pipeline: Pipeline, parameters: dict[str, Any], prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """The run view of every reference the parameters name, and the problems found."""
    marked = reference_parameters(pipeline)
    if not marked or not any(name in parameters for name in marked):
        return {}, []
    registry = load_registry(settings)
    resolved: dict[str, Any] = {}
    problems: list[Problem] = []
    for param, kind in marked.items():
        if param not in parameters:
            continue
        ref = registry.find(str(parameters[param]))
        problem = _problem(registry, ref, str(parameters[param]), kind)
        if problem is not None:
            problems.append(Problem(f"{prefix}/{param}", f"{param}: {problem}", "reference"))
        elif ref is not None:
            resolved[param] = ref.run_view()
    return resolved, problems


def _problem(registry: Registry, ref: Reference | None, name: str, kind: str) -> str | None:
    usable = f"indexed {kind}s here: {_listed(registry.names(kind, indexed=True))}"
    if ref is None:
        return f"no {kind} named {name!r} is registered on this site; {usable}"
    if ref.kind != kind:
        return f"{name!r} is a {ref.kind}, not a {kind}; {usable}"
    if not ref.indexed:
        missing = ", ".join(ref.missing)
        return (
            f"{kind} {name!r} is not indexed yet (missing: {missing}); an operator runs "
            f"'flowdeck references index {name}'; {usable}"
        )
    return None


# --- building indexes (flowdeck references index NAME)


def build_indexes(reference: Reference, *, rebuild: bool = False, threads: int = 1) -> list[str]:
    """Build the reference's missing indexes (all with ``rebuild``); returns the tools built.

    Each index is built in a temporary folder beside its final place and moved there when
    complete, so a killed build never leaves an index that looks built.
    """
    if not reference.fasta.is_file():
        raise NotFound(f"reference {reference.name}: FASTA {reference.fasta} does not exist")
    built = []
    for index in reference.indexes:
        if index.built and not rebuild:
            continue
        index.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{index.tool}-", dir=index.path.parent) as tmp:
            _BUILDERS[index.tool](reference.fasta, index.path, Path(tmp), threads)
        built.append(index.tool)
    return built


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise IndexBuildFailed(f"{argv[0]} is not installed on this machine (it builds this index)")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join(done.stderr.split()[-60:])
        raise IndexBuildFailed(f"{' '.join(argv[:2])} failed with exit code {done.returncode}: {tail}")


def _bwa(fasta: Path, target: Path, tmp: Path, threads: int) -> None:
    _run(["bwa", "index", "-p", str(tmp / "idx"), str(fasta)])
    for suffix in _BWA_FILES:  # .sa last: the files are complete once it is in place
        os.replace(tmp / f"idx{suffix}", f"{target}{suffix}")


def _faidx(fasta: Path, target: Path, tmp: Path, threads: int) -> None:
    _run(["samtools", "faidx", str(fasta), "--fai-idx", str(tmp / "idx.fai")])
    os.replace(tmp / "idx.fai", target)


def _dict(fasta: Path, target: Path, tmp: Path, threads: int) -> None:
    _run(["samtools", "dict", "-o", str(tmp / "idx.dict"), str(fasta)])
    os.replace(tmp / "idx.dict", target)


def _salmon(fasta: Path, target: Path, tmp: Path, threads: int) -> None:
    _run(["salmon", "index", "-t", str(fasta), "-i", str(tmp / "idx"), "-p", str(threads)])
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp / "idx", target)


def _kallisto(fasta: Path, target: Path, tmp: Path, threads: int) -> None:
    _run(["kallisto", "index", "-i", str(tmp / "idx"), str(fasta)])
    os.replace(tmp / "idx", target)


_BUILDERS = {"bwa": _bwa, "faidx": _faidx, "dict": _dict, "salmon": _salmon, "kallisto": _kallisto}
