"""The pipeline catalog: a folder of YAML files, loaded and checked at start.

Every ``*.yaml``/``*.yml`` file directly in the folder is one pipeline version
(the file format is in docs/pipelines.md). A broken file stops start-up with a
:class:`~flowdeck.errors.ConfigurationError` naming the file and the field;
every broken file is reported at once. Several versions of a pipeline may
coexist; the newest by semantic-version order is the default.

``flowdeck api`` reads the files at start (:class:`CatalogFiles`), checks them in a
child process and parses the same text on first use: PyYAML and jsonschema (~4 MB)
stay out of a server that never serves a pipeline.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.domain.pipelines import BACKEND_TARGETS, TARGET_KINDS, SpecError, Target, Version
from flowdeck.domain.request_steps import RequestStep, parse_request_step
from flowdeck.errors import ConfigurationError, NotFound, Problem, ValidationFailed
from flowdeck.services.pipelines.parameters import ParameterModel

if TYPE_CHECKING:
    import yaml

    from flowdeck.settings import Settings

FIELDS = (
    "name",
    "version",
    "description",
    "backend",
    "target",
    "research_groups",
    "parameters",
    "defaults",
    "rules",
    "samplesheet",
    "request_step",
)
_TARGET_OPTIONS = ("workflow_type_version", "input", "tool_version", "use_cached_jobs")
_TOOL_OPTIONS = ("tool_version", "use_cached_jobs")
# A Galaxy tool's parameters are checked against the schema Galaxy publishes for it (see
# services.galaxy_tools), so its catalog file needs no parameters of its own.
_TOOL_PARAMETERS: dict[str, Any] = {"additionalProperties": True}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def default_dir() -> Path:
    """The catalog shipped inside the package."""
    return Path(__file__).resolve().parents[2] / "catalog"


@dataclass(frozen=True, eq=False)
class Pipeline:
    """One version of one pipeline."""

    name: str
    version: Version
    description: str
    backend: str
    target: Target
    research_groups: frozenset[str]
    model: ParameterModel
    source: Path
    sample_id_parameter: str | None = None
    request_step: RequestStep | None = None  # docs/adr/0019

    def schema(self, schema_id: str | None = None) -> dict[str, Any]:
        """The parameters' JSON Schema 2020-12 document, defaults included."""
        return self.model.published(
            schema_id=schema_id or f"urn:flowdeck:pipeline:{self.name}:{self.version}:parameters",
            title=f"{self.name} {self.version} parameters",
            description=self.description,
        )

    def validate(self, parameters: Any, strict: bool = True, *, prefix: str = "") -> dict[str, Any]:
        """Resolved parameters with defaults applied; ValidationFailed lists every problem."""
        return self.model.validate(parameters, strict=strict, prefix=prefix)

    @property
    def takes_dataset(self) -> bool:
        """True when a run's dataset reaches the workflow: a Galaxy workflow's data input (named by
        ``target.input``, or its only one). Other targets take their inputs as parameters."""
        return self.target.workflow_type == "GALAXY" or self.target.input is not None

    def refuse_dataset(self, pointer: str) -> ValidationFailed:
        """The answer to a dataset given to a pipeline that would silently drop it."""
        message = (
            f"pipeline {self.name} takes no dataset: its inputs are parameters (see GET /pipelines/{self.name}/schema)"
        )
        return ValidationFailed(message, [Problem(pointer, message, "notAccepted")])

    def allows_group(self, group: str | None) -> bool:
        """True when runs of ``group`` may use this pipeline (no list means everyone)."""
        return not self.research_groups or group in self.research_groups

    def as_dict(self) -> dict[str, Any]:
        """A plain summary for listings (no server paths in it)."""
        return {
            "name": self.name,
            "version": str(self.version),
            "description": self.description,
            "backend": self.backend,
            "target": self.target.public_dict(),
            "research_groups": sorted(self.research_groups),
        }


class Catalog:
    """Pipelines by name, each name's versions newest first."""

    def __init__(self, pipelines: Iterable[Pipeline]) -> None:
        by_name: dict[str, list[Pipeline]] = {}
        for pipeline in pipelines:
            versions = by_name.setdefault(pipeline.name, [])
            for other in versions:
                if other.version == pipeline.version:
                    raise ConfigurationError(
                        f"{pipeline.source}: version: {pipeline.name} {pipeline.version} "
                        f"is also defined in {other.source}",
                        file=str(pipeline.source),
                        field="version",
                    )
            versions.append(pipeline)
        self._by_name = {
            name: sorted(versions, key=lambda p: p.version, reverse=True) for name, versions in sorted(by_name.items())
        }

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Catalog:
        """Load and check every pipeline file in ``directory`` (default: the shipped catalog)."""
        return CatalogFiles.read(directory).load()

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls.load(settings.pipelines_dir)

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self.list())

    def names(self) -> list[str]:
        return list(self._by_name)

    def list(self) -> list[Pipeline]:
        """The default (newest) version of every pipeline, by name."""
        return [versions[0] for versions in self._by_name.values()]

    def versions(self, name: str) -> builtins.list[Pipeline]:
        """Every version of ``name``, newest first; NotFound listing the names."""
        try:
            return list(self._by_name[name])
        except KeyError:
            known = ", ".join(self._by_name) or "none (the catalog is empty)"
            raise NotFound(f"no pipeline named {name!r}; pipelines: {known}") from None

    def get(self, name: str, version: str | None = None) -> Pipeline:
        """One version of ``name`` (the newest when ``version`` is None)."""
        versions = self.versions(name)
        if version is None:
            return versions[0]
        for pipeline in versions:
            if pipeline.version.text == version:
                return pipeline
        try:
            wanted = Version.parse(version)
        except ValueError:
            wanted = None
        for pipeline in versions:
            if pipeline.version == wanted:
                return pipeline
        listed = ", ".join(str(p.version) for p in versions)
        raise NotFound(f"pipeline {name!r} has no version {version!r}; versions: {listed}")


@dataclass(frozen=True, eq=False)
class CatalogFiles:
    """A catalog folder's pipeline files as read at one moment, to check and parse later.

    Parsing is what costs memory (PyYAML, jsonschema and the validators); reading is a few
    kilobytes. The catalog built by :meth:`load` is the one these texts give, whenever it is
    built: a file edited after start does not change what a server checked at start serves.
    """

    folder: Path
    # Each file's text, or why it could not be read (reported by load as a broken file).
    texts: dict[Path, str | SpecError]

    @classmethod
    def read(cls, directory: Path | str | None = None) -> CatalogFiles:
        """Every pipeline file of ``directory`` (default: the shipped catalog), unparsed."""
        folder = Path(directory) if directory is not None else default_dir()
        if not folder.is_dir():
            raise ConfigurationError(f"pipelines_dir {folder} is not a folder", file=str(folder))
        texts: dict[Path, str | SpecError] = {}
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                texts[path] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                texts[path] = SpecError("(file)", f"cannot be read: {exc}")
        return cls(folder, texts)

    def load(self) -> Catalog:
        """Parse and check every file; ConfigurationError lists every broken one."""
        pipelines: list[Pipeline] = []
        problems: list[Problem] = []
        for path, text in self.texts.items():
            try:
                if isinstance(text, SpecError):
                    raise text
                pipelines.append(parse_file(path, text))
            except SpecError as exc:
                problems.append(Problem(str(path), f"{path}: {exc.field}: {exc.message}", exc.field))
        if problems:
            lines = "\n".join(p.message for p in problems)
            raise ConfigurationError(
                f"pipeline catalog {self.folder}: {len(problems)} broken file(s):\n{lines}",
                problems=problems,
                file=problems[0].pointer,
                field=problems[0].rule,
            )
        return Catalog(pipelines)


# --- reading one file


@functools.cache
def _strict_loader() -> type[yaml.SafeLoader]:
    """SafeLoader that refuses a key given twice (PyYAML keeps the last silently).

    Built on first use: importing PyYAML at module level would load it in every process that
    imports this module for its types (the API server parses no YAML once the catalog is parsed).
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def no_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise SpecError(str(key), f"given twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    return StrictLoader


def load_file(path: Path) -> Pipeline:
    """Read and check one pipeline file; SpecError names the field that is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("(file)", f"cannot be read: {exc}") from None
    return parse_file(path, text)


def parse_file(path: Path, text: str) -> Pipeline:
    """Check one pipeline file's text (read from ``path``); SpecError names the field that is wrong."""
    import yaml  # first use; see _strict_loader

    try:
        raw = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError("(yaml)", f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise SpecError("(top level)", "a pipeline file must be a mapping of fields")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise SpecError(unknown[0], f"is not a pipeline field; fields: {', '.join(FIELDS)}")
    name = _name(raw.get("name"))
    version = _version(raw.get("version"))
    backend = _backend(raw.get("backend"))
    target = _target(raw.get("target"), backend, path)
    parameters = raw.get("parameters")
    if parameters is None and target.kind == "galaxy_tool":
        parameters = _TOOL_PARAMETERS
    model = ParameterModel.build(parameters, raw.get("rules"), raw.get("defaults"), f"{name} {version}")
    return Pipeline(
        name=name,
        version=version,
        description=_text(raw.get("description"), "description"),
        backend=backend,
        target=target,
        research_groups=_groups(raw.get("research_groups")),
        model=model,
        source=path,
        sample_id_parameter=_sample_id(raw.get("samplesheet"), model),
        request_step=_request_step(raw.get("request_step"), backend, path, model),
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, "is required (a non-empty string)")
    return value.strip()


def _name(value: Any) -> str:
    name = _text(value, "name")
    if not _NAME.fullmatch(name):
        raise SpecError("name", f"{name!r} must start with a letter and use only letters, digits, _ . - (≤ 64)")
    return name


def _version(value: Any) -> Version:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise SpecError("version", f'{value!r} reads as a number; quote it, e.g. version: "1.0.0"')
    try:
        return Version.parse(_text(value, "version"))
    except ValueError as exc:
        raise SpecError("version", str(exc)) from None


def _backend(value: Any) -> str:
    backend = _text(value, "backend")
    if backend not in BACKEND_TARGETS:
        raise SpecError("backend", f"{backend!r} is not a backend; backends: {', '.join(BACKEND_TARGETS)}")
    return backend


def _target(value: Any, backend: str, path: Path) -> Target:
    kinds = BACKEND_TARGETS[backend]
    expected = " or ".join(kinds)
    if not isinstance(value, dict):
        raise SpecError("target", f"must be a mapping with {expected} (backend {backend})")
    named = [k for k in value if k in TARGET_KINDS]
    extra = sorted(str(k) for k in value if k not in TARGET_KINDS and k not in _TARGET_OPTIONS)
    if extra:
        raise SpecError(f"target.{extra[0]}", f"is not a target field; backend {backend} takes {expected}")
    if len(named) != 1 or named[0] not in kinds:
        raise SpecError("target", f"backend {backend} needs exactly one of {expected}")
    kind_name = named[0]
    kind = TARGET_KINDS[kind_name]
    text = _text(value[kind_name], f"target.{kind_name}")
    type_version = value.get("workflow_type_version", kind.default_type_version)
    if not isinstance(type_version, str):
        raise SpecError("target.workflow_type_version", 'must be a string, e.g. "v1.2"')
    dataset_input = value.get("input")
    if dataset_input is not None and (kind.workflow_type != "GALAXY" or not isinstance(dataset_input, str)):
        raise SpecError("target.input", "is a Galaxy workflow's data input label (a string)")
    if kind_name != "galaxy_tool" and any(option in value for option in _TOOL_OPTIONS):
        raise SpecError("target", f"{' and '.join(_TOOL_OPTIONS)} belong to a galaxy_tool target")
    if kind_name == "galaxy_tool":
        return _tool_target(value, text, kind.workflow_type, type_version, dataset_input)
    file: str | None = None
    if kind.is_file:
        resolved = (path.parent / text).resolve()
        if not resolved.is_file():
            raise SpecError(f"target.{kind_name}", f"file not found: {resolved}")
        file = str(resolved)
    return Target(kind_name, text, kind.workflow_type, type_version, file, dataset_input)


def _tool_target(value: dict[str, Any], tool: str, wf_type: str, type_version: str, data: str | None) -> Target:
    version = value.get("tool_version", "latest")
    if not isinstance(version, str) or not version.strip():
        raise SpecError("target.tool_version", 'must be a tool version such as "1.0.0", or "latest"')
    cached = value.get("use_cached_jobs", False)
    if not isinstance(cached, bool):
        raise SpecError("target.use_cached_jobs", "must be true or false")
    pinned = None if version.strip() == "latest" else version.strip()
    return Target("galaxy_tool", tool, wf_type, type_version, None, data, pinned, cached)


def _groups(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise SpecError("research_groups", "must be a list of group names (empty: every group)")
    return frozenset(g.strip() for g in value)


def _request_step(value: Any, backend: str, path: Path, model: ParameterModel) -> RequestStep | None:
    if value is not None and backend != "snakemake":
        raise SpecError("request_step", "runs on Snakemake: only a snakemake pipeline may declare one")
    return parse_request_step(value, path, list(model.schema["properties"]))


def _sample_id(value: Any, model: ParameterModel) -> str | None:
    properties = model.schema["properties"]
    if value is None:
        return "sample_id" if "sample_id" in properties else None
    if not isinstance(value, dict) or set(value) - {"id_column"}:
        raise SpecError("samplesheet", "takes only id_column: <a parameter that names the sample>")
    column = value.get("id_column")
    if column is not None and column not in properties:
        raise SpecError("samplesheet.id_column", f"{column!r} is not a parameter")
    return str(column) if column is not None else None
