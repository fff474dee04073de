"""A run's parameters as HealthOmics takes them: ``s3://`` values pass through, ``file://``
values (and dataset references holding one) are uploaded to ``omics_staging_uri`` first.

A dataset reference is a mapping with a ``uri``; it becomes that URI. The run's own
dataset goes to the parameter its pipeline's target names as ``input``. Local files
must lie under flowdeck's data folder or a ``dataset_file_roots`` folder, so a run
cannot ship arbitrary server files to AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from flowdeck.domain.runs import RunSpec
from flowdeck.errors import EngineError, InvalidInput

if TYPE_CHECKING:
    from flowdeck.settings import Settings

# local path -> the s3:// URI it now has
Uploader = Callable[[Path], str]


def run_parameters(spec: RunSpec) -> dict[str, Any]:
    """The workflow parameters with the run's dataset added under its target's input."""
    params = dict(spec.workflow_params)
    target_input = spec.pipeline_target.get("input")
    if spec.dataset is not None and target_input:
        params.setdefault(str(target_input), spec.dataset)
    return params


def local_files(value: Any) -> list[str]:
    """Every ``file://`` URI in a parameter value, however deep."""
    if isinstance(value, str):
        return [value] if value.lower().startswith("file://") else []
    if isinstance(value, dict):
        return [uri for item in value.values() for uri in local_files(item)]
    if isinstance(value, list):
        return [uri for item in value for uri in local_files(item)]
    return []


def check_inputs(spec: RunSpec, settings: Settings) -> None:
    """Refuse at submit time local inputs that could not be staged (InvalidInput)."""
    found = local_files(run_parameters(spec))
    if found and not settings.omics_staging_uri:
        raise InvalidInput(
            f"{found[0][:200]!r} is a local file: HealthOmics reads s3:// inputs only, "
            "and FLOWDECK_OMICS_STAGING_URI is not set to upload it"
        )


def staged(value: Any, upload: Uploader, settings: Settings) -> Any:
    """``value`` with each dataset reference replaced by its URI and each local file by its upload."""
    if isinstance(value, str) and value.lower().startswith("file://"):
        return upload(local_path(value, settings))
    if isinstance(value, dict) and isinstance(value.get("uri"), str):
        return staged(value["uri"], upload, settings)
    if isinstance(value, dict):
        return {key: staged(item, upload, settings) for key, item in value.items()}
    if isinstance(value, list):
        return [staged(item, upload, settings) for item in value]
    return value


def local_path(uri: str, settings: Settings) -> Path:
    """The file a ``file://`` URI names, inside an allowed folder (EngineError otherwise)."""
    path = Path(unquote(urlparse(uri).path)).resolve()
    roots = [settings.data_dir.resolve(), *(root.resolve() for root in settings.dataset_file_roots)]
    if not any(path.is_relative_to(root) for root in roots):
        raise EngineError(f"file:// inputs must lie under {', '.join(map(str, roots))}; got {path}")
    if not path.is_file():
        raise EngineError(f"input file {path} does not exist")
    return path


def staging_key(prefix: str, run_id: str, path: Path) -> str:
    """Where a run's local input goes under the staging prefix (one folder per run)."""
    base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    return f"{base}{run_id}/{path.name}"
