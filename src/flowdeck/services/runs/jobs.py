"""The jobs door: seed 000's and seed 002's ``POST /jobs`` bodies, reruns, events.

Seed 000 names a Galaxy workflow and a registered dataset; seed 002 names a
catalog pipeline with typed parameters. Both become an ordinary run (the same
row WES shows), built by :func:`flowdeck.services.runs.pipeline_runs.build_run`
whenever a catalog pipeline is involved. Dispatch is the API's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import RowMapping

from flowdeck.db import datasets as dataset_rows
from flowdeck.db import events as event_rows
from flowdeck.db import runs as run_rows
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.principal import Principal
from flowdeck.domain.runs import RunRecord
from flowdeck.domain.states import is_terminal
from flowdeck.errors import Conflict, Problem, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets import inputs as dataset_inputs
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.pipelines import galaxy_tools
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.runs import service as run_service
from flowdeck.services.runs.pipeline_runs import build_run, visible_pipeline
from flowdeck.services.runs.service import NewRun, resolve_group

# use_cached (seed 001's use_cached_jobs, for a whole run): services.call_cache.
SEED_000 = {"dataset_id", "workflow_name", "overwrite", "parameters", "description", "use_cached"}
SEED_002 = {
    "pipeline_name",
    "pipeline_version",
    "parameters",
    "research_group",
    "description",
    "strict",
    "dataset_id",
    "use_cached",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "dataset_id": (str,),
    "workflow_name": (str,),
    "overwrite": (bool,),
    "parameters": (dict,),
    "description": (str, type(None)),
    "pipeline_name": (str,),
    "pipeline_version": (str, type(None)),
    "research_group": (str, type(None)),
    "strict": (bool,),
    "use_cached": (bool,),
}
_TYPE_WORDS = {
    "dataset_id": "a string",
    "workflow_name": "a string",
    "overwrite": "true or false",
    "parameters": "an object",
    "description": "a string",
    "pipeline_name": "a string",
    "pipeline_version": "a string",
    "research_group": "a string",
    "strict": "true or false",
    "use_cached": "true or false",
}


@dataclass
class Planned:
    """A run ready to store, and what a dry run shows of it."""

    new: NewRun
    pipeline: Pipeline | None
    galaxy_request: dict[str, Any] | None = None  # the tool request a Galaxy tool run will post

    def preview(self) -> dict[str, Any]:
        new = self.new
        shown = {"galaxy_request": self.galaxy_request} if self.galaxy_request is not None else {}
        return shown | {
            "dry_run": True,
            "pipeline_name": new.pipeline_name,
            "pipeline_version": new.pipeline_version,
            "workflow_name": new.pipeline_target.get("workflow"),
            "parameters": new.workflow_params,
            "research_group": new.research_group,
            "description": new.description,
            "dataset_id": new.dataset_id,
            "dataset": new.dataset,
            "rerun_of": new.rerun_of,
            "backend": new.workflow_engine,
            "target": self.pipeline.target.public_dict() if self.pipeline else new.pipeline_target,
            "workflow_type": new.workflow_type,
            "workflow_type_version": new.workflow_type_version,
            "workflow_url": new.workflow_url,
        }


def _check_shape(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", [Problem("/", "must be a JSON object", "type")])
    if "workflow_name" in body and "pipeline_name" in body:
        raise ValidationFailed(
            "give workflow_name (a Galaxy workflow) or pipeline_name (a catalog pipeline), not both",
            [Problem("/workflow_name", "conflicts with pipeline_name", "oneOf")],
        )
    if "workflow_name" not in body and "pipeline_name" not in body:
        raise ValidationFailed(
            "give pipeline_name (a catalog pipeline) or dataset_id and workflow_name (a Galaxy workflow)",
            [Problem("/pipeline_name", "pipeline_name or workflow_name is required", "required")],
        )
    allowed = SEED_000 if "workflow_name" in body else SEED_002
    required = ("dataset_id", "workflow_name") if "workflow_name" in body else ("pipeline_name",)
    problems = [
        Problem(f"/{key}", f"is not a field here; fields: {', '.join(sorted(allowed))}", "additionalProperties")
        for key in body
        if key not in allowed
    ]
    problems += [Problem(f"/{key}", "is required", "required") for key in required if key not in body]
    problems += [
        Problem(f"/{key}", f"must be {_TYPE_WORDS[key]}", "type")
        for key, value in body.items()
        if key in allowed and not _is_a(value, _TYPES[key])
    ]
    if problems:
        raise ValidationFailed("invalid job: " + "; ".join(f"{p.pointer}: {p.message}" for p in problems), problems)
    return body


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int in Python; JSON keeps them apart.
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


async def plan(services: AppContext, body: Any, principal: Principal) -> Planned:
    """Check a POST /jobs body (either seed's) and build its run, storing nothing."""
    body = _check_shape(body)
    if "workflow_name" in body:
        planned = await _plan_galaxy(services, body, principal)
    else:
        planned = await _plan_pipeline(services, body, principal)
    # A dry run answers what the real submit would: an engine that is not enabled is refused here too.
    run_service.check_admissible(services, planned.new)
    planned.new.use_cached = body.get("use_cached", False)
    return planned


async def _plan_pipeline(services: AppContext, body: dict[str, Any], principal: Principal) -> Planned:
    pipeline = visible_pipeline(services, principal, body["pipeline_name"], body.get("pipeline_version"))
    group = resolve_group(principal, body.get("research_group"))
    dataset, dataset_id = None, body.get("dataset_id")
    if dataset_id is not None and not pipeline.takes_dataset:
        raise pipeline.refuse_dataset("/dataset_id")
    if dataset_id is not None:
        row = await dataset_service.get_visible(services, dataset_id, principal)
        dataset = dataset_service.run_reference(services, row)
    new = build_run(
        services,
        pipeline,
        body.get("parameters", {}),
        research_group=group,
        description=body.get("description"),
        dataset=dataset,
        dataset_id=dataset_id,
        strict=body.get("strict", True),
    )
    await dataset_inputs.check_params(services, new.workflow_params, principal)  # a dry run answers it too
    if galaxy_tools.is_tool(pipeline):
        return Planned(new, pipeline, await galaxy_tools.check(services, new))
    return Planned(new, pipeline)


def galaxy_pipeline(services: AppContext, workflow_name: str) -> Pipeline | None:
    """The catalog pipeline that runs this Galaxy workflow, if any."""
    for pipeline in services.catalog.list():
        if pipeline.backend == "galaxy" and pipeline.target.value == workflow_name:
            return pipeline
    return None


def allowed_workflows(services: AppContext) -> list[str]:
    named = [p.target.value for p in services.catalog.list() if p.backend == "galaxy"]
    return sorted(set(named) | set(services.settings.galaxy_allowed_workflows))


async def _plan_galaxy(services: AppContext, body: dict[str, Any], principal: Principal) -> Planned:
    row = await dataset_service.get_visible(services, body["dataset_id"], principal)
    name = body["workflow_name"]
    dataset = dataset_service.run_reference(services, row)
    group = resolve_group(principal, row.research_group)
    pipeline = galaxy_pipeline(services, name)
    if pipeline is not None:
        new = build_run(
            services,
            pipeline,
            body.get("parameters", {}),
            research_group=group,
            description=body.get("description"),
            dataset=dataset,
            dataset_id=row.id,
        )
    elif name in services.settings.galaxy_allowed_workflows:
        new = NewRun(
            workflow_type="GALAXY",
            workflow_type_version="gxformat2",
            workflow_url="galaxy://workflow/" + quote(name, safe=""),
            workflow_params=body.get("parameters", {}),
            workflow_engine="galaxy",
            research_group=group,
            description=body.get("description"),
            dataset_id=row.id,
            dataset=dataset,
            pipeline_target={"workflow": name},
            origin="jobs",
        )
    else:
        allowed = allowed_workflows(services)
        raise ValidationFailed(
            f"workflow {name!r} is not allowed; allowed: {', '.join(allowed) or 'none'}",
            [Problem("/workflow_name", f"{name!r} is not an allowed workflow", "enum")],
            allowed=allowed,
        )
    if body.get("overwrite"):
        async with services.db.read() as conn:
            new.rerun_of = await dataset_rows.latest_run_id(conn, row.id, new.pipeline_name, new.workflow_url)
    return Planned(new, pipeline)


async def submit(services: AppContext, planned: Planned, principal: Principal) -> str:
    return await run_service.submit(services, planned.new, principal)


async def rerun(services: AppContext, run_id: str, principal: Principal, resume: bool = False) -> str:
    """A new run of the same workflow, parameters and dataset, linked by ``rerun_of``; with
    ``resume``, one that re-uses the old run's finished steps (docs/jobs.md)."""
    row = await run_service.get_visible(services, run_id, principal)
    if resume:
        _check_resumable(services, row)
    attachments = await run_service.stored_attachments(services, row)
    new = NewRun(
        workflow_type=row.workflow_type,
        workflow_type_version=row.workflow_type_version,
        workflow_url=row.workflow_url,
        workflow_params=row.workflow_params,
        tags=row.tags,
        workflow_engine=row.backend,
        workflow_engine_version=row.workflow_engine_version,
        workflow_engine_parameters=row.workflow_engine_parameters,
        attachments=attachments,
        research_group=row.research_group,
        description=row.description,
        dataset_id=row.dataset_id,
        dataset=row.dataset,
        pipeline_name=row.pipeline_name,
        pipeline_version=row.pipeline_version,
        pipeline_target=row.pipeline_target,
        rerun_of=row.id,
        resume_from=row.id if resume else None,
        origin="jobs",
    )
    return await run_service.submit(services, new, principal)


def can_resume(services: AppContext, row: RunRecord) -> bool:
    """Whether a rerun of ``row`` may ask to re-use its finished steps (what ``rerun(resume=True)`` accepts)."""
    enabled = {b.name: b for b in services.backends.all()}
    return is_terminal(row.state) and row.backend in enabled and enabled[row.backend].resumes


def _check_resumable(services: AppContext, row: RunRecord) -> None:
    """Resume needs an ended run (its steps no longer change) on an engine that can re-use steps."""
    if not is_terminal(row.state):
        raise Conflict(f"run {row.id} is {row.state}; only an ended run can be resumed (cancel it first)")
    backend = services.backends.get(row.backend)
    if not backend.resumes:
        able = sorted(b.name for b in services.backends.all() if b.resumes)
        detail = f"{row.backend} cannot re-use the finished steps of a run; rerun it without resume" + (
            f" (engines that can: {', '.join(able)})" if able else ""
        )
        raise ValidationFailed(detail, [Problem("/resume", detail, "resumable")])


async def events(services: AppContext, run_id: str, principal: Principal) -> list[RowMapping]:
    await run_service.get_visible(services, run_id, principal)
    async with services.db.read() as conn:
        return await event_rows.for_run(conn, run_id)


async def total(services: AppContext, principal: Principal, flt: RunFilter) -> int:
    """How many runs the filter matches among the visible ones (seed 002's JobList.total)."""
    groups = principal.visible_groups()
    if groups is not None:
        flt = RunFilter(**{**flt.__dict__, "groups": groups if flt.groups is None else flt.groups & groups})
    return await services.db.read_aside(lambda conn: run_rows.count(conn, flt))
