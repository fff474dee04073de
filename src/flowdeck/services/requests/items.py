"""What a request maps its pipeline over: datasets, samples or sample-sheet rows.

Every item is validated when the request arrives, so the worker only creates
runs. A problem is located by a JSON pointer: ``/samples/7/fastq_r1`` in a
sample, ``/parameters/caller`` in the parameters shared by every item,
``/dataset_ids/3`` for a dataset, and the sample sheet's own pointers
(``/columns/2``, ``/rows/7/fastq_r1``, see :mod:`flowdeck.services.requests.samplesheet`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flowdeck.db import requests as request_rows
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, PayloadTooLarge, Problem, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.pipelines.parameters import pointer
from flowdeck.services.requests.samplesheet import parse_samplesheet

SOURCES = ("dataset_ids", "samples", "samplesheet")


@dataclass
class RequestInput:
    """A ``POST /requests`` body: one pipeline, shared parameters, and exactly one source of items."""

    pipeline_name: str
    pipeline_version: str | None = None
    research_group: str | None = None
    description: str | None = None
    strict: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)
    dataset_ids: list[str] | None = None
    samples: list[dict[str, Any]] | None = None
    samplesheet: bytes | str | None = None
    samplesheet_type: str | None = None
    send_email_notification: bool = False
    use_cached: bool = False  # every run's; a sample's own ``use_cached`` overrides it (services.call_cache)


@dataclass(frozen=True)
class Item:
    """One future run: its resolved parameters and, in dataset mode, its dataset."""

    parameters: dict[str, Any]
    dataset_id: str | None = None
    dataset: dict[str, Any] | None = None
    use_cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "dataset_id": self.dataset_id,
            "dataset": self.dataset,
            "use_cached": self.use_cached,
        }


async def items_of(services: AppContext, principal: Principal, given: RequestInput, pipeline: Pipeline) -> list[Item]:
    """Every item of the request, validated; ValidationFailed lists every problem."""
    chosen = [name for name in SOURCES if getattr(given, name) is not None]
    if len(chosen) != 1:
        message = "give exactly one of dataset_ids, samples or samplesheet" + (
            f" (got {', '.join(chosen)})" if chosen else ""
        )
        raise ValidationFailed(message, [Problem("", message, "oneOf")])
    limit = services.settings.max_request_runs
    if given.samplesheet is not None:
        sheet = parse_samplesheet(
            given.samplesheet, pipeline, kind=given.samplesheet_type, common=given.parameters, max_rows=limit
        )
        return [Item(row, use_cached=given.use_cached) for row in sheet.rows]
    if given.samples is not None:
        _check_count(given.samples, "samples", limit)
        flags = [_cache_flag(sample, i, given.use_cached) for i, sample in enumerate(given.samples)]
        bare = [{k: v for k, v in s.items() if k != "use_cached"} if isinstance(s, dict) else s for s in given.samples]
        resolved = _samples(pipeline, given.parameters, bare, given.strict)
        return [Item(p, use_cached=flag) for p, flag in zip(resolved, flags, strict=True)]
    assert given.dataset_ids is not None
    if not pipeline.takes_dataset:
        raise pipeline.refuse_dataset("/dataset_ids")
    _check_count(given.dataset_ids, "dataset_ids", limit)
    problems: list[Problem] = []
    try:
        shared = pipeline.validate(given.parameters, given.strict, prefix="/parameters")
    except ValidationFailed as exc:
        problems += exc.problems
    datasets, missing = await _datasets(services, principal, given.dataset_ids)
    if problems or missing:
        raise ValidationFailed(f"the request for {pipeline.name} has problems", problems + missing)
    return [
        Item(shared, dataset_id=i, dataset=ref, use_cached=given.use_cached)
        for i, ref in zip(given.dataset_ids, datasets, strict=True)
    ]


def _cache_flag(sample: Any, index: int, default: bool) -> bool:
    """A sample's own ``use_cached`` (not a pipeline parameter), else the request's."""
    flag = sample.get("use_cached", default) if isinstance(sample, dict) else default
    if not isinstance(flag, bool):
        problem = Problem(f"/samples/{index}/use_cached", "must be true or false", "type")
        raise ValidationFailed(f"/samples/{index}/use_cached: must be true or false", [problem])
    return flag


def _check_count(values: Sequence[Any], name: str, limit: int) -> None:
    if not values:
        raise ValidationFailed(
            f"{name} is empty", [Problem(f"/{name}", f"{name} needs at least one entry", "minItems")]
        )
    if len(values) > limit:
        raise PayloadTooLarge(
            f"{name} has {len(values)} entries; a request may have at most {limit} (setting max_request_runs)",
            limit=limit,
        )


def _samples(pipeline: Pipeline, shared: dict[str, Any], samples: list[Any], strict: bool) -> list[dict[str, Any]]:
    resolved: list[dict[str, Any]] = []
    problems: dict[Problem, None] = {}  # ordered set: a bad shared parameter is reported once
    first_use: dict[str, int] = {}
    id_name = pipeline.sample_id_parameter
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict):
            problems[Problem(f"/samples/{i}", "a sample is an object of parameters", "type")] = None
            continue
        prefix = f"/samples/{i}"
        try:
            row = pipeline.validate({**shared, **sample}, strict, prefix=prefix)
        except ValidationFailed as exc:
            problems.update((_shared_pointer(p, prefix, shared, sample), None) for p in exc.problems)
            continue
        resolved.append(row)
        if id_name and id_name in row:
            sample_id = str(row[id_name])
            if sample_id in first_use:
                message = f"{id_name} {sample_id!r} is already used by /samples/{first_use[sample_id]}"
                problems[Problem(prefix + pointer([id_name]), message, "unique")] = None
            first_use.setdefault(sample_id, i)
    if problems:
        raise ValidationFailed(f"the samples for {pipeline.name} have problems", list(problems))
    return resolved


def _shared_pointer(problem: Problem, prefix: str, shared: dict[str, Any], sample: dict[str, Any]) -> Problem:
    """A problem in a shared parameter points at /parameters, not at every sample."""
    relative = problem.pointer[len(prefix) :] if problem.pointer.startswith(prefix) else ""
    name = relative[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")
    if relative and name in shared and name not in sample:
        return Problem("/parameters" + relative, problem.message, problem.rule)
    return problem


async def _datasets(
    services: AppContext, principal: Principal, ids: list[str]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The dataset reference of each id, in order, and a problem for every unknown or duplicate id."""
    if not all(isinstance(i, str) and i for i in ids):
        raise InvalidInput("dataset_ids must be a list of dataset id strings")
    async with services.db.read() as conn:
        rows = {row.id: row for row in await request_rows.datasets_by_id(conn, sorted(set(ids)))}
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, dataset_id in enumerate(ids):
        row = rows.get(dataset_id)
        if dataset_id in seen:
            problems.append(
                Problem(
                    f"/dataset_ids/{i}",
                    f"dataset {dataset_id} is already listed at /dataset_ids/{seen[dataset_id]}",
                    "uniqueItems",
                )
            )
        elif row is None or row.deleted_at is not None or not principal.can_see(row.research_group):
            problems.append(Problem(f"/dataset_ids/{i}", f"dataset {dataset_id} not found", "exists"))
        seen.setdefault(dataset_id, i)
    if problems:
        return [], problems
    return [dataset_ref(rows[i]) for i in ids], []


def dataset_ref(row: Any) -> dict[str, Any]:
    """How a run names its dataset to the backend (a Galaxy dataset id or a URI)."""
    ref: dict[str, Any] = {"name": row.name}
    if row.galaxy_dataset_id:
        ref["galaxy_dataset_id"] = row.galaxy_dataset_id
    elif row.uri:
        ref["uri"] = row.uri
    return ref
