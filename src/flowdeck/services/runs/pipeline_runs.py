"""From a catalog pipeline and its parameters to a :class:`NewRun`, in one place.

Every door that starts a pipeline (``POST /jobs``, requests, sample sheets)
goes through :func:`build_run`, so a pipeline runs the same way whichever
door it came in by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from flowdeck.backends.registry import load_class
from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, NotFound, Problem, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.pipelines.references import resolve_references
from flowdeck.services.pipelines.site_tools import tool_problems
from flowdeck.services.runs.attachments import MAX_ATTACHMENTS, Attachment
from flowdeck.services.runs.service import NewRun


def visible_pipeline(services: AppContext, principal: Principal, name: str, version: str | None = None) -> Pipeline:
    """A pipeline the caller may use; one limited to other groups looks absent (404)."""
    pipeline = services.catalog.get(name, version)
    if not may_see(pipeline, principal):
        raise NotFound(f"no pipeline named {name!r}")
    return pipeline


def may_see(pipeline: Pipeline, principal: Principal) -> bool:
    """True when the pipeline is open to everyone or to one of the caller's groups."""
    if principal.sees_all or not pipeline.research_groups:
        return True
    return bool(pipeline.research_groups & set(principal.groups))


def build_run(
    services: AppContext,
    pipeline: Pipeline,
    parameters: Any,
    *,
    research_group: str | None,
    description: str | None,
    dataset: dict[str, Any] | None = None,
    strict: bool = True,
    dataset_id: str | None = None,
    origin: str = "jobs",
    rerun_of: str | None = None,
) -> NewRun:
    """Validate ``parameters`` (ValidationFailed lists every problem) and describe the run.

    ``research_group`` should already be resolved for the caller
    (:func:`flowdeck.services.runs.service.resolve_group`); a group the pipeline does
    not allow is refused here. Nothing is stored.
    """
    resolved = pipeline.validate(parameters if parameters is not None else {}, strict)
    references, problems = resolve_references(services.settings, pipeline, resolved)
    problems += tool_problems(services.settings, pipeline, resolved)
    if problems:
        raise ValidationFailed(f"pipeline {pipeline.name}: {problems[0].message}", problems)
    if research_group is not None and not pipeline.allows_group(research_group):
        allowed = ", ".join(sorted(pipeline.research_groups))
        raise ValidationFailed(
            f"pipeline {pipeline.name} is not open to research group {research_group!r}; open to: {allowed}",
            [
                Problem(
                    "/research_group",
                    f"{research_group!r} may not run {pipeline.name}; allowed: {allowed}",
                    "research_groups",
                )
            ],
        )
    target = pipeline.target
    workflow_url, attachments = _workflow(pipeline)
    return NewRun(
        workflow_type=target.workflow_type,
        workflow_type_version=target.workflow_type_version or _default_type_version(pipeline),
        workflow_url=workflow_url,
        workflow_params=resolved,
        workflow_engine=pipeline.backend,
        attachments=attachments,
        research_group=research_group,
        description=description,
        dataset_id=dataset_id,
        dataset=dataset,
        pipeline_name=pipeline.name,
        pipeline_version=str(pipeline.version),
        pipeline_target=_run_target(pipeline, strict) | ({"references": references} if references else {}),
        tags={"pipeline": pipeline.name, "pipeline_version": str(pipeline.version)},
        origin=origin,
        rerun_of=rerun_of,
    )


def _run_target(pipeline: Pipeline, strict: bool) -> dict[str, Any]:
    """The target handed to the backend; a Galaxy tool also learns whether the request is relaxed
    (Galaxy then converts it to a strict one itself, ``strict: false``)."""
    target = pipeline.target.as_dict()
    if pipeline.target.kind == "galaxy_tool":
        target["strict"] = strict
    return target


def _default_type_version(pipeline: Pipeline) -> str:
    # The class attribute is enough: a dry run must not need the engine enabled.
    versions = load_class(pipeline.backend).workflow_types.get(pipeline.target.workflow_type, [])
    return versions[0] if versions else ""


def _workflow(pipeline: Pipeline) -> tuple[str, list[Attachment]]:
    """The run's workflow_url and, for file targets, the workflow's folder as attachments."""
    target = pipeline.target
    if target.path is None:
        scheme = "galaxy://workflow/" if target.workflow_type == "GALAXY" else f"{pipeline.backend}://"
        scheme = "galaxy://tool/" if target.kind == "galaxy_tool" else scheme
        return scheme + quote(target.value, safe=""), []
    main = Path(target.path)
    # Workflows import neighbouring files (CWL tools, WDL imports), so the whole folder travels.
    files = sorted(p for p in main.parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if len(files) > MAX_ATTACHMENTS:
        raise InvalidInput(f"pipeline {pipeline.name}'s workflow folder holds more than {MAX_ATTACHMENTS} files")
    attachments = [Attachment(p.relative_to(main.parent).as_posix(), p.read_bytes()) for p in files]
    return main.name, attachments


def visible_pipelines(services: AppContext, principal: Principal) -> list[Pipeline]:
    """The newest version of every pipeline the caller may run (the catalog's listing)."""
    return [p for p in services.catalog.list() if may_see(p, principal)]


def visible_versions(services: AppContext, principal: Principal, name: str) -> list[Pipeline]:
    """Every version of ``name`` the caller may run, newest first."""
    return [p for p in services.catalog.versions(name) if may_see(p, principal)]
