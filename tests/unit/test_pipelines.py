"""The pipeline catalog: loading, checking, versions, lookup and published schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowdeck.domain.pipelines import Version
from flowdeck.errors import ConfigurationError, NotFound
from flowdeck.services.pipelines.catalog import Catalog, default_dir
from flowdeck.settings import Settings

SHIPPED = [
    "galaxy_sort",
    "galaxy_upper",
    "gatk_variant_calling",
    "hello_cwl",
    "hello_galaxy",
    "hello_snakemake",
    "hello_wdl",
    "rnaseq_deseq2",
]

GOOD = """\
name: demo_x
version: "{version}"
description: A test pipeline.
backend: demo
target:
  simulation: demo_x
parameters:
  type: object
  required: [sample_id]
  properties:
    sample_id: {{type: string}}
    depth: {{type: integer, minimum: 1}}
defaults:
  depth: 5
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load()


# --- the shipped catalog


def test_shipped_catalog_loads_every_entry(shipped: Catalog) -> None:
    assert shipped.names() == SHIPPED
    assert [p.name for p in shipped.list()] == SHIPPED


def test_from_settings_defaults_to_the_shipped_catalog() -> None:
    catalog = Catalog.from_settings(Settings(pipelines_dir=None))
    assert catalog.names() == SHIPPED
    assert default_dir().name == "catalog"


@pytest.mark.parametrize(
    ("name", "backend", "kind", "workflow_type"),
    [
        ("gatk_variant_calling", "snakemake", "snakefile", "SMK"),
        ("rnaseq_deseq2", "snakemake", "snakefile", "SMK"),
        ("hello_cwl", "cwltool", "cwl", "CWL"),
        ("hello_snakemake", "snakemake", "snakefile", "SMK"),
        ("hello_wdl", "miniwdl", "wdl", "WDL"),
        ("hello_galaxy", "galaxy", "galaxy_workflow", "GALAXY"),
    ],
)
def test_shipped_targets(shipped: Catalog, name: str, backend: str, kind: str, workflow_type: str) -> None:
    pipeline = shipped.get(name)
    assert (pipeline.backend, pipeline.target.kind, pipeline.target.workflow_type) == (backend, kind, workflow_type)
    target = pipeline.target.as_dict()
    if pipeline.target.path is not None:
        assert Path(target["path"]).is_file()
    else:
        assert target["workflow"]


def test_galaxy_target_names_workflow_and_input(shipped: Catalog) -> None:
    assert shipped.get("hello_galaxy").target.as_dict() == {
        "kind": "galaxy_workflow",
        "workflow_type": "GALAXY",
        "workflow_type_version": "",
        "workflow": "flowdeck_sort_upper",
        "input": "text_input",
    }


def test_published_schema_is_2020_12_with_defaults_and_rules(shipped: Catalog) -> None:
    schema = shipped.get("gatk_variant_calling", "1.0.0").schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:flowdeck:pipeline:gatk_variant_calling:1.0.0:parameters"
    assert schema["title"] == "gatk_variant_calling 1.0.0 parameters"
    assert schema["properties"]["caller"]["default"] == "HaplotypeCaller"
    assert schema["properties"]["quality_threshold"]["default"] == 30
    assert schema["additionalProperties"] is False
    assert [r["name"] for r in schema["x-flowdeck-rules"]] == [
        "paired_end",
        "padding_needs_intervals",
        "panel_of_normals_needs_mutect2",
    ]
    assert shipped.get("hello_cwl").schema("https://x/pipelines/hello_cwl/schema")["$id"] == (
        "https://x/pipelines/hello_cwl/schema"
    )


def test_published_schema_is_a_copy(shipped: Catalog) -> None:
    pipeline = shipped.get("rnaseq_deseq2")
    pipeline.schema()["properties"].clear()
    assert "sample_id" in pipeline.schema()["properties"]


def test_allows_group(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.format(version="1.0.0") + "research_groups: [cancer_genomics_lab]\n")
    restricted = Catalog.load(tmp_path).get("demo_x")
    assert restricted.allows_group("cancer_genomics_lab")
    assert not restricted.allows_group("systems_biology_lab")
    assert not restricted.allows_group(None)
    assert Catalog.load().get("hello_cwl").allows_group("anyone")


# --- versions


def test_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]
    parsed = [Version.parse(v) for v in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert Version.parse("1.0.0+build.5") == Version.parse("1.0.0")


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", ""])
def test_not_semver(text: str) -> None:
    with pytest.raises(ValueError, match="is not a semantic version"):
        Version.parse(text)


def test_newest_version_is_the_default(tmp_path: Path) -> None:
    for version in ["1.2.0", "1.10.0", "1.9.9", "2.0.0-rc.1", "0.9.0"]:
        write(tmp_path, f"demo_x-{version}.yaml", GOOD.format(version=version))
    catalog = Catalog.load(tmp_path)
    assert [str(p.version) for p in catalog.versions("demo_x")] == ["2.0.0-rc.1", "1.10.0", "1.9.9", "1.2.0", "0.9.0"]
    assert str(catalog.get("demo_x").version) == "2.0.0-rc.1"
    assert str(catalog.get("demo_x", "1.9.9").version) == "1.9.9"
    assert str(catalog.get("demo_x", "1.9.9+anything").version) == "1.9.9"
    assert len(catalog.list()) == 1


def test_unknown_pipeline_lists_names(shipped: Catalog) -> None:
    with pytest.raises(NotFound) as caught:
        shipped.get("nope")
    assert caught.value.detail == (
        "no pipeline named 'nope'; pipelines: galaxy_sort, galaxy_upper, gatk_variant_calling, hello_cwl, hello_galaxy, "
        "hello_snakemake, hello_wdl, rnaseq_deseq2"
    )


def test_unknown_version_lists_versions(tmp_path: Path) -> None:
    for version in ["1.0.0", "2.0.0"]:
        write(tmp_path, f"{version}.yaml", GOOD.format(version=version))
    with pytest.raises(NotFound) as caught:
        Catalog.load(tmp_path).get("demo_x", "9.9.9")
    assert caught.value.detail == "pipeline 'demo_x' has no version '9.9.9'; versions: 2.0.0, 1.0.0"


def test_empty_catalog_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"pipelines: none \(the catalog is empty\)"):
        Catalog.load(tmp_path).get("x")


# --- broken files

BROKEN = [
    ("name: [\n", "(yaml)", "not valid YAML at line"),
    ("- just\n- a list\n", "(top level)", "must be a mapping"),
    (GOOD.format(version="1.0.0") + "colour: blue\n", "colour", "is not a pipeline field"),
    (GOOD.format(version="1.0.0").replace('"1.0.0"', "1.0"), "version", "reads as a number; quote it"),
    (GOOD.format(version="1.0"), "version", "is not a semantic version"),
    (GOOD.format(version="1.0.0").replace("name: demo_x", "name: 9lives"), "name", "must start with a letter"),
    (GOOD.format(version="1.0.0").replace("name: demo_x\n", ""), "name", "is required"),
    (GOOD.format(version="1.0.0").replace("description: A test pipeline.\n", ""), "description", "is required"),
    (GOOD.format(version="1.0.0").replace("backend: demo", "backend: nextflow"), "backend", "is not a backend"),
    (
        GOOD.format(version="1.0.0").replace("backend: demo", "backend: cwltool"),
        "target",
        "backend cwltool needs exactly one of cwl",
    ),
    (
        GOOD.format(version="1.0.0").replace("simulation: demo_x", "simulation: x\n  colour: red"),
        "target.colour",
        "is not a target field",
    ),
    (
        GOOD.format(version="1.0.0")
        .replace("backend: demo", "backend: cwltool")
        .replace("simulation: demo_x", "cwl: missing.cwl"),
        "target.cwl",
        "file not found",
    ),
    (
        GOOD.format(version="1.0.0").replace("{type: integer, minimum: 1}", "{type: integr}"),
        "parameters.properties.depth.type",
        "is not valid under any of the given schemas",
    ),
    (
        GOOD.format(version="1.0.0").replace("required: [sample_id]", "required: [sample]"),
        "parameters.required[0]",
        "is not among parameters.properties",
    ),
    (GOOD.format(version="1.0.0").replace("type: object", "type: array"), "parameters.type", "must be object"),
    (GOOD.format(version="1.0.0").replace("depth: 5", "depth: five"), "defaults.depth", "must be an integer"),
    (GOOD.format(version="1.0.0").replace("depth: 5", "depth: 0"), "defaults.depth", "must be at least 1"),
    (GOOD.format(version="1.0.0").replace("depth: 5", "width: 5"), "defaults.width", "is not among"),
    (
        GOOD.format(version="1.0.0").replace("depth: 5", "sample_id: x"),
        "defaults.sample_id",
        "must not be in parameters.required",
    ),
    (GOOD.format(version="1.0.0") + "rules:\n  - {name: r, check: magic}\n", "rules[0].check", "unknown check 'magic'"),
    (
        GOOD.format(version="1.0.0") + "rules:\n  - {name: r, check: requires, if: depth, then: [width]}\n",
        "rules[0]",
        "names 'width', which is not a parameter",
    ),
    (
        GOOD.format(version="1.0.0") + "rules:\n  - {name: r, check: requires, if: depth}\n",
        "rules[0].then",
        "check requires needs then",
    ),
    (
        GOOD.format(version="1.0.0") + "rules:\n  - {name: r, check: less_than, lower: depth, upper: depth, x: 1}\n",
        "rules[0].x",
        "not an argument of check less_than",
    ),
    (GOOD.format(version="1.0.0") + "research_groups: lab_a\n", "research_groups", "must be a list"),
    (
        GOOD.format(version="1.0.0") + "samplesheet: {id_column: sample}\n",
        "samplesheet.id_column",
        "is not a parameter",
    ),
    (GOOD.format(version="1.0.0") + "backend: cwltool\n", "backend", "given twice"),
]


@pytest.mark.parametrize(("text", "field", "message"), BROKEN)
def test_broken_file_names_file_and_field(tmp_path: Path, text: str, field: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(tmp_path)
    assert f"{path}: {field}: " in caught.value.detail
    assert message in caught.value.detail
    assert caught.value.extra["file"] == str(path)
    assert caught.value.extra["field"] == field


def test_every_broken_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.format(version="1.0"))
    write(tmp_path, "b.yml", GOOD.format(version="1.0.0").replace("backend: demo", "backend: x"))
    write(tmp_path, "c.yaml", GOOD.format(version="1.0.0"))
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(tmp_path)
    detail = caught.value.detail
    assert detail.startswith(f"pipeline catalog {tmp_path}: 2 broken file(s):")
    assert f"{tmp_path / 'a.yaml'}: version:" in detail
    assert f"{tmp_path / 'b.yml'}: backend:" in detail


def test_same_version_twice_names_both_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.format(version="1.0.0"))
    write(tmp_path, "b.yaml", GOOD.format(version="1.0.0+rebuild"))
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(tmp_path)
    assert str(tmp_path / "a.yaml") in caught.value.detail
    assert str(tmp_path / "b.yaml") in caught.value.detail


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a folder"):
        Catalog.load(tmp_path / "nope")


def test_file_target_is_relative_to_the_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "main.wdl").write_text("version 1.0\n")
    write(
        tmp_path,
        "p.yaml",
        GOOD.format(version="1.0.0")
        .replace("backend: demo", "backend: toil")
        .replace("simulation: demo_x", "wdl: wf/main.wdl"),
    )
    target = Catalog.load(tmp_path).get("demo_x").target
    assert target.path == str((tmp_path / "wf" / "main.wdl").resolve())
    assert (target.workflow_type, target.workflow_type_version) == ("WDL", "1.0")


# --- the shipped workflows really run (no containers)


def _engine(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment")
    return path


def _command(name: str, target: Path, params: Path, workdir: Path) -> list[str]:
    if name == "hello_cwl":
        return [str(_engine("cwltool")), "--no-container", "--outdir", str(workdir), str(target), str(params)]
    if name == "hello_snakemake":
        return [
            str(_engine("snakemake")),
            "--snakefile",
            str(target),
            "--directory",
            str(workdir),
            "--cores",
            "1",
            "--configfile",
            str(params),
        ]
    return [str(_engine("miniwdl")), "run", str(target), "-i", str(params), "--dir", f"{workdir}/."]


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("name", ["hello_cwl", "hello_snakemake", "hello_wdl"])
def test_shipped_workflow_runs(shipped: Catalog, tmp_path: Path, name: str) -> None:
    pipeline = shipped.get(name)
    params = pipeline.validate({"lines": ["it's $(x); ok"]} if name == "hello_cwl" else {"message": "it's $(x); ok"})
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    workdir = tmp_path / "run"
    workdir.mkdir()
    env = {**os.environ, "MINIWDL__SCHEDULER__CONTAINER_BACKEND": "bare"}
    command = _command(name, Path(str(pipeline.target.path)), params_file, workdir)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = list(workdir.rglob("shouted.txt"))  # miniwdl also links it under out/
    expected = "IT'S $(X); OK\n" * (1 if name == "hello_cwl" else 3)
    assert outputs
    assert {path.read_text() for path in outputs} == {expected}
