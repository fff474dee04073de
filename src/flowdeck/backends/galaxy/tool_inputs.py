"""A Galaxy tool run's inputs, in flowdeck's words and in Galaxy's.

A run of a ``galaxy_tool`` pipeline carries the tool's parameters as
``workflow_params``, shaped as Galaxy's ``parameter_request_schema`` describes
them. Where Galaxy expects a dataset or a collection, flowdeck also accepts its
own references, which :func:`galaxy_inputs` turns into Galaxy's:

==========================================  ===============================================
flowdeck reference                          sent to Galaxy
==========================================  ===============================================
``{"galaxy_dataset_id": id}``               ``{"src": "hda", "id": id}``
``{"galaxy_collection_id": id}``            ``{"src": "hdca", "id": id}``
``{"uri": "https://…", "file_type": t}``    ``{"src": "url", "url": …, "ext": t}`` (Galaxy fetches it)
``{"uri": "file://…"}``                     uploaded into the run's history, then ``{"src": "hda"}``
``{"map_over": <collection reference>}``    ``{"__class__": "Batch", "values": [...]}``: one job per element
==========================================  ===============================================

Galaxy's own forms pass through unchanged. The run's dataset (``POST /jobs`` with a
``dataset_id``) goes to the parameter named by the target's ``input``. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

from flowdeck.backends.galaxy.inputs import FETCHED_SCHEMES, check_dataset_ref
from flowdeck.domain.runs import RunSpec
from flowdeck.errors import InvalidInput

TOOL_URL = "galaxy://tool/"
MAP_OVER = "map_over"
# What a file:// reference stands for while a request is only being checked (nothing uploaded yet).
PLACEHOLDER_ID = "0" * 16

Stager = Callable[[dict[str, Any]], str]


def is_tool_run(spec: RunSpec) -> bool:
    """True when the run names a Galaxy tool rather than a workflow."""
    return spec.pipeline_target.get("kind") == "galaxy_tool" or spec.workflow_url.startswith(TOOL_URL)


def tool_of(spec: RunSpec) -> tuple[str, str | None]:
    """The tool id and pinned version (None: the newest on the server)."""
    tool = spec.pipeline_target.get("tool")
    if not isinstance(tool, str) or not tool:
        tool = unquote(urlparse(spec.workflow_url).path.strip("/")) if spec.workflow_url.startswith(TOOL_URL) else ""
    if not tool:
        raise InvalidInput(f"a Galaxy tool run names its tool as galaxy://tool/<tool id>, not {spec.workflow_url!r}")
    version = spec.pipeline_target.get("tool_version")
    return tool, version if isinstance(version, str) and version else None


def is_strict(spec: RunSpec) -> bool:
    return spec.pipeline_target.get("strict", True) is not False


def galaxy_inputs(spec: RunSpec, stage: Stager | None = None) -> dict[str, Any]:
    """The run's parameters with flowdeck references in Galaxy's form. ``stage`` uploads a
    ``file://`` reference and returns its dataset id; without it a placeholder id stands in."""
    return convert_inputs(spec.workflow_params, spec.dataset, spec.pipeline_target, stage)


def convert_inputs(
    params: dict[str, Any], dataset: dict[str, Any] | None, target: dict[str, Any], stage: Stager | None = None
) -> dict[str, Any]:
    """:func:`galaxy_inputs` from a run's parts (a dry run has no RunSpec yet)."""
    inputs = dict(params)
    if dataset is not None:
        name = target.get("input")
        if not isinstance(name, str) or not name:
            raise InvalidInput("this Galaxy tool pipeline takes no dataset: its target names no input")
        inputs[name] = dataset
    converted: dict[str, Any] = _convert(inputs, stage or (lambda _ref: PLACEHOLDER_ID), "")
    return converted


def _convert(value: Any, stage: Stager, where: str) -> Any:
    if isinstance(value, list):
        return [_convert(item, stage, f"{where}/{i}") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if set(value) == {MAP_OVER}:
        return {"__class__": "Batch", "values": [_reference(value[MAP_OVER], stage, f"{where}/{MAP_OVER}")]}
    if {"uri", "galaxy_dataset_id", "galaxy_collection_id"} & set(value):
        return _reference(value, stage, where)
    return {key: _convert(item, stage, f"{where}/{key}") for key, item in value.items()}


def _reference(ref: Any, stage: Stager, where: str) -> dict[str, Any]:
    if isinstance(ref, dict) and ref.get("galaxy_collection_id"):
        return {"src": "hdca", "id": str(ref["galaxy_collection_id"])}
    if isinstance(ref, dict) and "src" in ref:
        return ref  # Galaxy's own form
    check_dataset_ref(ref, where or "dataset")
    if ref.get("galaxy_dataset_id"):
        return {"src": "hda", "id": str(ref["galaxy_dataset_id"])}
    uri = str(ref["uri"])
    if urlparse(uri).scheme.lower() in FETCHED_SCHEMES:
        fetched = {"src": "url", "url": uri, "ext": str(ref.get("file_type") or "txt")}
        return fetched | ({"name": str(ref["name"])} if ref.get("name") else {})
    return {"src": "hda", "id": stage(ref)}


def request_body(spec: RunSpec, history_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The POST /api/jobs body: the tool request."""
    tool_id, version = tool_of(spec)
    body = request_body_preview({**spec.pipeline_target, "tool": tool_id, "tool_version": version}, inputs)
    if spec.engine_parameters.get("use_cached_jobs") == "true" or spec.resume_from is not None:
        body["use_cached_jobs"] = True
    return {**body, "history_id": history_id}


def request_body_preview(target: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The tool request without its history: what a dry run shows."""
    body: dict[str, Any] = {
        "tool_id": target.get("tool"),
        "inputs": inputs,
        "strict": target.get("strict", True) is not False,
    }
    if target.get("tool_version"):
        body["tool_version"] = target["tool_version"]
    if target.get("use_cached_jobs"):
        body["use_cached_jobs"] = True
    return body
