"""What a Galaxy run is asked to run, and with which inputs.

The workflow
    ``spec.pipeline_target["workflow"]`` (a pipeline's target), else the WES
    ``workflow_url`` ``galaxy://workflow/<name or id>`` (the name URL-quoted). A
    16+ hex-digit value is tried as an id first, then as a name.

Datasets
    A *dataset reference* is a mapping with one of ``galaxy_dataset_id`` (an
    existing Galaxy dataset), ``uri`` (``https://``, ``http://``, ``ftp://`` —
    Galaxy fetches it — or ``file://`` under flowdeck's data folder, which
    flowdeck uploads), and optionally ``name`` and ``file_type`` (Galaxy's
    extension, default ``auto``). ``spec.dataset`` is one; it goes to the input
    labelled ``spec.pipeline_target["input"]``, or to the workflow's only data input.

Parameters
    ``spec.workflow_params`` maps workflow input labels to values: a dataset
    reference for data inputs, a plain value for parameter inputs. The key
    ``step_parameters`` holds ``{step label or id: {tool parameter: value}}`` and
    is passed to Galaxy as the invocation's step parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flowdeck.domain.runs import RunSpec
from flowdeck.errors import EngineError, InvalidInput

URL_SCHEME = "galaxy"
FETCHED_SCHEMES = frozenset({"http", "https", "ftp"})
UPLOADED_SCHEMES = frozenset({"file"})
STEP_PARAMETERS = "step_parameters"
_ID = re.compile(r"[0-9a-f]{16,}")


@dataclass(frozen=True)
class WorkflowInfo:
    """A Galaxy workflow's id, name and input labels by kind."""

    id: str
    name: str
    data_inputs: tuple[str, ...]
    parameter_inputs: tuple[str, ...]


@dataclass
class InvocationPlan:
    """Inputs still to stage (label -> dataset reference), ready values, step parameters."""

    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    step_parameters: dict[str, Any] = field(default_factory=dict)


def looks_like_id(value: str) -> bool:
    """True for a Galaxy encoded id (lower-case hex, 16 digits or more)."""
    return bool(_ID.fullmatch(value))


def workflow_target(spec: RunSpec) -> str:
    """The Galaxy workflow name or id a run names (see module docstring)."""
    target = spec.pipeline_target.get("workflow")
    if isinstance(target, str) and target.strip():
        return target.strip()
    url = urlparse(spec.workflow_url)
    if url.scheme != URL_SCHEME or url.netloc != "workflow" or not url.path.strip("/"):
        raise InvalidInput(
            f"a Galaxy run names its workflow as galaxy://workflow/<name or id>, not {spec.workflow_url!r}"
        )
    return unquote(url.path.strip("/"))


def check_dataset_ref(ref: Any, where: str) -> None:
    """Reject a dataset reference flowdeck cannot stage (InvalidInput)."""
    if not isinstance(ref, dict):
        raise InvalidInput(f"{where}: a dataset reference is a mapping with 'uri' or 'galaxy_dataset_id'")
    if ref.get("galaxy_dataset_id"):
        return
    uri = ref.get("uri")
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"{where}: a dataset reference needs 'uri' or 'galaxy_dataset_id'")
    scheme = urlparse(uri).scheme.lower()
    if scheme not in FETCHED_SCHEMES | UPLOADED_SCHEMES:
        supported = ", ".join(f"{s}://" for s in sorted(FETCHED_SCHEMES | UPLOADED_SCHEMES))
        raise InvalidInput(
            f"{where}: the Galaxy backend cannot stage {scheme or 'scheme-less'} URIs ({uri!r}); "
            f"supported: {supported}, or a galaxy_dataset_id"
        )


def is_dataset_ref(value: Any) -> bool:
    return isinstance(value, dict) and ("uri" in value or "galaxy_dataset_id" in value)


def validate_spec(spec: RunSpec) -> None:
    """Everything that can be checked without asking Galaxy."""
    workflow_target(spec)
    if spec.dataset is not None:
        check_dataset_ref(spec.dataset, "dataset")
    for key, value in spec.workflow_params.items():
        if key == STEP_PARAMETERS:
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise InvalidInput(f"{STEP_PARAMETERS} maps step labels to mappings of tool parameters")
        elif is_dataset_ref(value):
            check_dataset_ref(value, f"workflow_params/{key}")


def plan_invocation(spec: RunSpec, workflow: WorkflowInfo) -> InvocationPlan:
    """Sort a run's dataset and parameters onto the workflow's inputs (EngineError when
    they do not fit this workflow)."""
    plan = InvocationPlan()
    known = set(workflow.data_inputs) | set(workflow.parameter_inputs)
    for key, value in spec.workflow_params.items():
        if key == STEP_PARAMETERS:
            plan.step_parameters = dict(value)
        elif key in workflow.data_inputs:
            if not is_dataset_ref(value):
                raise EngineError(f"workflow input {key!r} of {workflow.name!r} takes a dataset reference")
            plan.datasets[key] = value
        elif key in known:
            plan.values[key] = value
        else:
            raise EngineError(
                f"Galaxy workflow {workflow.name!r} has no input {key!r}; "
                f"its inputs: {', '.join(sorted(known)) or 'none'}"
            )
    if spec.dataset is not None:
        plan.datasets[_dataset_input(spec, workflow)] = spec.dataset
    return plan


def _dataset_input(spec: RunSpec, workflow: WorkflowInfo) -> str:
    label = spec.pipeline_target.get("input")
    if isinstance(label, str) and label:
        if label not in workflow.data_inputs:
            raise EngineError(f"Galaxy workflow {workflow.name!r} has no data input {label!r}")
        return label
    if len(workflow.data_inputs) == 1:
        return workflow.data_inputs[0]
    raise EngineError(
        f"Galaxy workflow {workflow.name!r} has {len(workflow.data_inputs)} data inputs "
        f"({', '.join(workflow.data_inputs) or 'none'}); the pipeline must name one as 'input'"
    )


def local_path(uri: str, allowed_root: Path) -> Path:
    """The file a ``file://`` URI names, which must lie under ``allowed_root`` so a run
    cannot ship arbitrary server files to Galaxy."""
    path = Path(unquote(urlparse(uri).path)).resolve()
    root = allowed_root.resolve()
    if not path.is_relative_to(root):
        raise EngineError(f"file:// datasets must lie under flowdeck's data folder {root}; got {path}")
    if not path.is_file():
        raise EngineError(f"dataset file {path} does not exist")
    return path
