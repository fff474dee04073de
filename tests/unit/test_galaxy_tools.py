"""Galaxy tool pipelines without a Galaxy: the catalog target, the input conversion, the verdict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flowdeck.backends.galaxy.tool_inputs import PLACEHOLDER_ID, convert_inputs, request_body
from flowdeck.backends.galaxy.tool_requests import verdict
from flowdeck.domain.pipelines import SpecError
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput
from flowdeck.services.pipelines.catalog import default_dir, load_file, parse_file

TOOL = """\
name: t
version: "1.0.0"
description: A tool.
backend: galaxy
target:
{target}
"""


def test_shipped_tool_pipelines_name_tool_version_and_input() -> None:
    sort = load_file(default_dir() / "galaxy_sort.yaml").target
    upper = load_file(default_dir() / "galaxy_upper.yaml").target
    assert sort.as_dict() == {
        "kind": "galaxy_tool",
        "workflow_type": "GALAXY",
        "workflow_type_version": "tool",
        "workflow": "sort1",
        "input": "input",
        "tool": "sort1",
        "tool_version": None,  # latest
        "use_cached_jobs": False,
    }
    assert (upper.value, upper.tool_version) == ("flowdeck_upper", "1.0.0")


def test_tool_pipeline_takes_any_parameters_until_galaxy_checks_them(tmp_path: Path) -> None:
    pipeline = parse_file(tmp_path / "t.yaml", TOOL.format(target="  galaxy_tool: cat1\n  use_cached_jobs: true"))
    assert pipeline.target.use_cached_jobs is True
    assert pipeline.validate({"queries": [{"input2": {"src": "hda", "id": "1"}}]}) == {
        "queries": [{"input2": {"src": "hda", "id": "1"}}]
    }


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ("  galaxy_workflow: wf\n  tool_version: latest", "target"),
        ("  galaxy_tool: cat1\n  tool_version: 3", "target.tool_version"),
        ("  galaxy_tool: cat1\n  use_cached_jobs: sometimes", "target.use_cached_jobs"),
    ],
)
def test_bad_tool_targets_are_refused(tmp_path: Path, target: str, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_file(tmp_path / "t.yaml", TOOL.format(target=target))
    assert caught.value.field == field


def spec(params: dict[str, Any], dataset: dict[str, Any] | None = None, **target: Any) -> RunSpec:
    return RunSpec(
        run_id="r",
        workflow_type="GALAXY",
        workflow_type_version="tool",
        workflow_url="galaxy://tool/flowdeck_upper",
        workflow_params=params,
        workdir=Path("/nonexistent"),
        attachments_dir=Path("/nonexistent"),
        pipeline_target={"kind": "galaxy_tool", "tool": "flowdeck_upper", "input": "input", **target},
        dataset=dataset,
    )


def test_flowdeck_references_become_galaxys() -> None:
    params = {
        "a": {"galaxy_dataset_id": "abcdef0123456789"},
        "b": {"map_over": {"galaxy_collection_id": "0123456789abcdef"}},
        "c": [{"uri": "https://example.org/x.tsv", "file_type": "tabular", "name": "x"}],
        "d": {"nested": {"uri": "file:///data/in.txt"}},
        "e": {"src": "hda", "id": "1111111111111111"},
        "n": 3,
    }
    converted = convert_inputs(params, {"galaxy_dataset_id": "2222222222222222"}, {"input": "input"})
    assert converted == {
        "a": {"src": "hda", "id": "abcdef0123456789"},
        "b": {"__class__": "Batch", "values": [{"src": "hdca", "id": "0123456789abcdef"}]},
        "c": [{"src": "url", "url": "https://example.org/x.tsv", "ext": "tabular", "name": "x"}],
        "d": {"nested": {"src": "hda", "id": PLACEHOLDER_ID}},
        "e": {"src": "hda", "id": "1111111111111111"},
        "n": 3,
        "input": {"src": "hda", "id": "2222222222222222"},
    }


def test_unstageable_reference_and_dataset_without_input_are_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot stage s3"):
        convert_inputs({"a": {"uri": "s3://bucket/key"}}, None, {})
    with pytest.raises(InvalidInput, match="names no input"):
        convert_inputs({}, {"galaxy_dataset_id": "2222222222222222"}, {})


def test_request_body_passes_strictness_version_and_cache() -> None:
    body = request_body(spec({}, strict=False, tool_version="1.0.0", use_cached_jobs=True), "h1", {"x": 1})
    assert body == {
        "tool_id": "flowdeck_upper",
        "tool_version": "1.0.0",
        "history_id": "h1",
        "inputs": {"x": 1},
        "strict": False,
        "use_cached_jobs": True,
    }
    assert request_body(spec({}), "h1", {})["strict"] is True
    assert "use_cached_jobs" not in request_body(spec({}), "h1", {})


@pytest.mark.parametrize(
    ("request_state", "jobs", "run", "expected"),
    [
        ("new", {}, State.INITIALIZING, State.INITIALIZING),
        ("new", {"ok": 1}, State.RUNNING, State.RUNNING),  # Galaxy is still expanding it
        ("failed", {}, State.INITIALIZING, State.EXECUTOR_ERROR),
        ("failed", {"ok": 1}, State.RUNNING, State.EXECUTOR_ERROR),
        ("submitted", {}, State.INITIALIZING, State.RUNNING),
        ("submitted", {"queued": 1, "ok": 2}, State.RUNNING, State.RUNNING),
        ("submitted", {"ok": 3}, State.RUNNING, State.COMPLETE),
        ("submitted", {"ok": 2, "error": 1}, State.RUNNING, State.EXECUTOR_ERROR),
        ("submitted", {"ok": 1, "running": 1, "error": 1}, State.RUNNING, State.RUNNING),
        ("new", {}, State.CANCELING, State.CANCELING),
        ("submitted", {"running": 1}, State.CANCELING, State.CANCELING),
        ("submitted", {"deleted": 2, "ok": 1}, State.CANCELING, State.CANCELED),
    ],
)
def test_run_state_follows_request_and_jobs(
    request_state: str, jobs: dict[str, int], run: State, expected: State
) -> None:
    assert verdict(request_state, jobs, run, "why").state == expected


def test_failed_request_carries_galaxys_message() -> None:
    assert verdict("failed", {}, State.INITIALIZING, "bad input").reason == "Galaxy failed the tool request: bad input"
    stored = {"err_msg": "bad input", "err_data": {}}  # Galaxy's state_message
    assert verdict("failed", {}, State.INITIALIZING, stored).reason == "Galaxy failed the tool request: bad input"


def test_use_cached_jobs_is_the_galaxy_engine_parameter_and_resume_asks_for_it(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from flowdeck.backends.galaxy.backend import GalaxyBackend
    from flowdeck.settings import Settings

    settings = Settings(data_dir=tmp_path, galaxy_url="http://127.0.0.1:9", galaxy_api_key=SecretStr("k"))
    backend = GalaxyBackend(settings)
    assert backend.engine_parameter_defaults() == {"use_cached_jobs": ("boolean", "false")}
    for refused in ({"use_cached_jobs": "maybe"}, {"cache": "true"}):
        with pytest.raises(InvalidInput):
            backend.validate(replace(spec({}), engine_parameters=refused))
    asked = replace(spec({}), engine_parameters={"use_cached_jobs": "true"})
    resumed = replace(spec({}), resume_from=tmp_path / "old" / "work")
    assert request_body(asked, "h1", {})["use_cached_jobs"] is True
    assert request_body(resumed, "h1", {})["use_cached_jobs"] is True
