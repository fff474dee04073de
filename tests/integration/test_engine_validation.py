"""Bad input to the local engine backends: refused at submit, nothing read outside the run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.run_files import output_files
from flowdeck.backends.registry import load_class
from flowdeck.domain.runs import RunSpec
from flowdeck.errors import EngineError, InvalidInput
from flowdeck.settings import Settings

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"

TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [cat]
inputs:
  text: {type: File, inputBinding: {position: 1}}
outputs: []
"""
DOCKER_TOOL = TOOL + "requirements:\n  DockerRequirement: {dockerPull: 'debian:12'}\n"
DOCKER_HINT = TOOL + "hints:\n  DockerRequirement: {dockerPull: 'debian:12'}\n"
DOCKER_LIST = TOOL + "requirements:\n  - class: DockerRequirement\n    dockerPull: 'debian:12'\n"
NESTED = """cwlVersion: v1.2
class: Workflow
inputs: {}
outputs: []
steps:
  one: {run: ../outside.cwl, in: {}, out: []}
"""


def backend(name: str, tmp_path: Path) -> LocalEngineBackend:
    cls = load_class(name)
    assert issubclass(cls, LocalEngineBackend)
    if not cls.available():
        pytest.skip(f"{name} is not installed")
    return cls(Settings(data_dir=tmp_path / "data"))


def spec(tmp_path: Path, url: str, params: dict[str, Any] | None = None, **extra: Any) -> RunSpec:
    attachments = tmp_path / "attachments"
    attachments.mkdir(exist_ok=True)
    return RunSpec(
        run_id="r",
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url=url,
        workflow_params=params or {},
        workdir=tmp_path / "run",
        attachments_dir=attachments,
        **extra,
    )


def attach(tmp_path: Path, name: str, text: str | bytes) -> None:
    path = tmp_path / "attachments" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


@pytest.mark.parametrize(
    ("files", "url", "params", "message"),
    [
        ({"w.cwl": "cwlVersion: v1.2\nclass: [unclosed\n"}, "w.cwl", {}, "does not parse"),
        ({"w.cwl": "just: a mapping\n"}, "w.cwl", {}, "not a CWL document"),
        ({"w.cwl": TOOL.replace("v1.2", "v2.0")}, "w.cwl", {}, "not supported"),
        ({}, "missing.cwl", {}, "not among the run's attachments"),
        ({}, "../../etc/hostname", {}, "outside the run's attachments"),
        ({}, "/etc/hostname", {}, "outside the run's attachments"),
        ({}, "ftp://example.org/w.cwl", {}, "unsupported scheme"),
        ({}, "http://example.org/w.cwl", {}, "not under an allowed prefix"),
        ({"w.cwl": DOCKER_TOOL}, "w.cwl", {}, "DockerRequirement"),
        ({"w.cwl": DOCKER_LIST}, "w.cwl", {}, "DockerRequirement"),
        ({"w.cwl": NESTED}, "w.cwl", {}, "not among the attachments"),
        ({"w.cwl": TOOL}, "w.cwl", {"text": {"class": "File", "path": "/etc/passwd"}}, "outside"),
        ({"w.cwl": TOOL}, "w.cwl", {"text": {"class": "File", "location": "../secret"}}, "outside"),
        ({"w.cwl": TOOL}, "w.cwl", {"text": {"class": "File", "path": "absent.txt"}}, "not among"),
    ],
)
@pytest.mark.parametrize("name", ["cwltool", "toil"])
def test_bad_cwl_is_refused(
    name: str, tmp_path: Path, files: dict[str, str], url: str, params: dict[str, Any], message: str
) -> None:
    for file_name, text in files.items():
        attach(tmp_path, file_name, text)
    with pytest.raises(InvalidInput, match=message):
        backend(name, tmp_path).validate(spec(tmp_path, url, params))


def test_docker_under_hints_is_accepted(tmp_path: Path) -> None:
    attach(tmp_path, "w.cwl", DOCKER_HINT)
    attach(tmp_path, "in.txt", "x")
    backend("cwltool", tmp_path).validate(spec(tmp_path, "w.cwl", {"text": {"class": "File", "path": "in.txt"}}))


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"--outdir": "/tmp"}, "not allowed"),
        ({"--on-error": "maybe"}, "must be one of"),
        ({"--parallel": "--outdir=/"}, "is a flag"),
    ],
)
def test_bad_engine_parameters(tmp_path: Path, engine: dict[str, str], message: str) -> None:
    attach(tmp_path, "w.cwl", TOOL)
    with pytest.raises(InvalidInput, match=message):
        backend("cwltool", tmp_path).validate(spec(tmp_path, "w.cwl", engine_parameters=engine))


@pytest.mark.parametrize("value", ["1 --forceall", "-1", "two", "99999"])
def test_engine_values_cannot_smuggle_options(tmp_path: Path, value: str) -> None:
    attach(tmp_path, "Snakefile", "rule all:\n    shell: 'true'\n")
    with pytest.raises(InvalidInput, match="--cores"):
        backend("snakemake", tmp_path).validate(spec(tmp_path, "Snakefile", engine_parameters={"--cores": value}))


@pytest.mark.parametrize(("text", "message"), [(b"", "empty"), (b"\xff\xfe rule", "UTF-8")])
def test_bad_snakefile(tmp_path: Path, text: bytes, message: str) -> None:
    attach(tmp_path, "Snakefile", text)
    with pytest.raises(InvalidInput, match=message):
        backend("snakemake", tmp_path).validate(spec(tmp_path, "Snakefile"))


WDL_TEXT = (WORKFLOWS / "wdl" / "two_step.wdl").read_text()


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("version 1.0\nworkflow w { call }\n", {"message": "x"}, "not valid WDL"),
        ("version 1.0\nimport '../../outside.wdl' as o\nworkflow w {}\n", {}, "outside the run's attachments"),
        (WDL_TEXT, {"message": "x", "colour": "red"}, "not declared"),
        (WDL_TEXT, {}, "required inputs missing: message"),
        (WDL_TEXT.replace("String message", "File message"), {"message": "/etc/passwd"}, "outside"),
    ],
)
def test_bad_wdl(tmp_path: Path, text: str, params: dict[str, Any], message: str) -> None:
    attach(tmp_path, "w.wdl", text)
    with pytest.raises(InvalidInput, match=message):
        backend("miniwdl", tmp_path).validate(spec(tmp_path, "w.wdl", params))


def test_submit_refuses_without_starting_anything(tmp_path: Path) -> None:
    attach(tmp_path, "w.cwl", DOCKER_TOOL)
    with pytest.raises(EngineError, match="DockerRequirement"):
        backend("cwltool", tmp_path).submit(spec(tmp_path, "w.cwl"))
    assert not (tmp_path / "run" / ".flowdeck" / "launch.json").exists()


def test_output_files_stay_inside_the_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "out").mkdir(parents=True)
    (run / "out" / "good.txt").write_text("good")
    (tmp_path / "secret.txt").write_text("secret")
    (run / "out" / "link.txt").symlink_to(tmp_path / "secret.txt")
    files, skipped = output_files(["out/good.txt", "out/link.txt", "../secret.txt", "/etc/passwd"], run)
    assert [f.name for f in files] == ["out/good.txt"]
    assert files[0].checksum == "sha256:" + hashlib.sha256(b"good").hexdigest()
    assert len(skipped) == 3
