"""The call-cache key of a whole run: what must be equal for one run's outputs to answer another.

The key is a SHA-256 over a canonical JSON of :class:`Material`: the workflow by the content of
its files (never by a pipeline's name), the resolved parameters with every input file replaced
by its content digest (so the same bytes under another path are the same input), the engine's
parameters, the pipeline target's options, the dataset's checksum, and the engine and its
version. Who submitted it is not part of it: the research group is matched beside the key
(docs/adr/0026-call-caching-of-whole-runs.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Bumped whenever what goes into a key changes: keys of older runs then simply never match.
KEY_VERSION = "flowdeck-call-cache/1"
Pointer = tuple[str | int, ...]


@dataclass(frozen=True)
class Material:
    """Everything a run's result depends on, as values."""

    workflow_type: str
    workflow_type_version: str
    workflow_url: str  # the entry file among the attachments
    attachments: Mapping[str, str]  # name -> sha256 of its bytes
    params: Any  # resolved parameters, input files replaced by {"sha256": ...}
    engine_parameters: Mapping[str, str]
    target: Mapping[str, Any]  # the pipeline target's options, without server paths
    dataset_checksum: str | None
    engine: str
    engine_version: str


def key(material: Material) -> str:
    """The hex SHA-256 of ``material`` in canonical JSON (sorted keys, no spaces)."""
    document = {"version": KEY_VERSION, **asdict(material)}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_refuse)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def with_digests(params: Any, digests: Mapping[Pointer, str]) -> Any:
    """``params`` with the value at each pointer replaced by ``{"sha256": digest}``."""
    replaced = params
    for at, digest in digests.items():
        replaced = _replace(replaced, at, {"sha256": digest})
    return replaced


def _replace(node: Any, at: Pointer, value: Any) -> Any:
    if not at:
        return value
    head, rest = at[0], at[1:]
    if isinstance(node, list) and isinstance(head, int):
        return [_replace(item, rest, value) if i == head else item for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {k: _replace(item, rest, value) if k == head else item for k, item in node.items()}
    return node
