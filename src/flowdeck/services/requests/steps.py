"""A request's request-level step: one run after all its samples (docs/adr/0019).

At submit, :func:`check_groups` refuses (422) a request whose samples' groups
cannot be compared, and :func:`step_state_for` marks one that will get a step
(``requests.step_state = waiting``).

In the worker, :func:`create_due` finds waiting requests whose runs have all
ended. When every sample completed, it creates the step run: request_index =
total_runs (one past the samples), so the UNIQUE (request_id, request_index)
constraint lets only one worker's insert through, then moves ``waiting`` to
``created`` by compare-and-set. The samples' outputs the step needs travel as
the step run's attachments (``samples/<sample>/<output>``), as any workflow
file does. When a sample did not complete, the step is ``skipped`` with an
event saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from flowdeck.db import requests as request_rows
from flowdeck.domain.principal import Principal
from flowdeck.domain.request_steps import RequestStep, group_problems
from flowdeck.domain.requests import RequestRecord, SampleRun
from flowdeck.domain.states import TERMINAL, State
from flowdeck.errors import FlowdeckError, NotFound, Problem, ValidationFailed
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.runs import service as run_service
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.attachments import Attachment
from flowdeck.services.runs.service import NewRun

log = logging.getLogger(__name__)
ACTOR = "worker"
DUE_LIMIT = 20
_TERMINAL = sorted(s.value for s in TERMINAL)


def check_groups(pipeline: Pipeline, parameters: Sequence[Mapping[str, Any]], items_pointer: str) -> None:
    """ValidationFailed (422) when the samples' groups cannot be compared by the pipeline's step."""
    step = pipeline.request_step
    if step is None:
        return
    found = group_problems(step, [_group(step, p) for p in parameters])
    if found:
        problems = [
            Problem(f"{items_pointer}/{i}/{step.group_by}" if i is not None else items_pointer, text, "requestStep")
            for i, text in found
        ]
        raise ValidationFailed(f"the samples' {step.group_by}s cannot be compared: {problems[0].message}", problems)


def step_state_for(pipeline: Pipeline, parameters: Sequence[Mapping[str, Any]]) -> str | None:
    """``waiting`` when the request will get its pipeline's step, else None."""
    step = pipeline.request_step
    if step is None or not parameters or any(_group(step, p) is None for p in parameters):
        return None
    return "waiting"


def _group(step: RequestStep, parameters: Mapping[str, Any]) -> str | None:
    value = parameters.get(step.group_by)
    return None if value is None else str(value)


async def create_due(services: AppContext, limit: int = DUE_LIMIT) -> int:
    """Create (or skip) the step of every waiting request whose runs have all ended; returns how many."""
    async with services.db.read() as conn:
        due = await request_rows.steps_due(conn, _TERMINAL, State.COMPLETE.value, limit)
    done = 0
    for request_id, blocked in due:
        try:
            if blocked:
                await _skip(services, request_id, "a sample run did not complete")
            else:
                await _create(services, request_id)
            done += 1
        except Exception:
            log.exception("request %s: its step could not be created; it will be retried", request_id)
    return done


async def _create(services: AppContext, request_id: str) -> None:
    async with services.db.read() as conn:
        row = await request_rows.get_with_spec(conn, request_id)
        samples = await request_rows.sample_runs(conn, request_id, row.total_runs) if row else []
    if row is None:
        return
    owner = Principal(name=row.owner or "unknown", unrestricted=True, via="request")
    try:
        pipeline = services.catalog.get(row.pipeline_name or "", row.pipeline_version)
        if pipeline.request_step is None:
            raise NotFound(f"{pipeline.name} {pipeline.version} has no request step in this catalog")
        run_id = await run_service.submit(
            services, _step_run(services, pipeline, pipeline.request_step, row, samples), owner
        )
    except IntegrityError:
        # Another worker's insert of request_index = total_runs won: the step exists once.
        log.info("request %s: its step run already exists", request_id)
        await _move(services, request_id, "created", "step run created by another worker")
        return
    except FlowdeckError as exc:
        await _skip(services, request_id, f"the step could not be created: {exc.detail}")
        return
    await _move(services, request_id, "created", f"step {pipeline.request_step.name} created as run {run_id}")


def _step_run(
    services: AppContext,
    pipeline: Pipeline,
    step: RequestStep,
    row: RequestRecord,
    samples: Sequence[SampleRun],
) -> NewRun:
    """The step's run: its Snakefile's folder, and each sample's inputs as attachments."""
    folder = step.snakefile.parent
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    attachments = [Attachment(p.relative_to(folder).as_posix(), p.read_bytes()) for p in files]
    entries: list[dict[str, Any]] = []
    for sample in samples:
        params = sample.workflow_params
        name = str(params.get(pipeline.sample_id_parameter or "", "") or f"sample{sample.request_index}")
        for wanted in step.inputs:
            attachments.append(Attachment(f"samples/{name}/{wanted}", _output_bytes(services, sample, wanted)))
        entries.append(
            {"sample": name, "condition": params.get(step.group_by), "quant": f"samples/{name}/{step.inputs[0]}"}
        )
    first = samples[0].workflow_params if samples else {}
    config: dict[str, Any] = {"samples": entries}
    config |= {key: first.get(key) for key in step.parameters if first.get(key) is not None}
    target = {"kind": "snakefile", "workflow_type": "SMK", "workflow_type_version": "9", "path": str(step.snakefile)}
    return NewRun(
        workflow_type="SMK",
        workflow_type_version="9",
        workflow_url=step.snakefile.name,
        workflow_params=config,
        workflow_engine="snakemake",
        attachments=attachments,
        research_group=row.research_group,
        description=f"{step.name} across the {len(samples)} samples of request {row.id}",
        pipeline_name=pipeline.name,
        pipeline_version=str(pipeline.version),
        pipeline_target=target | {"request_step": step.name},
        request_id=row.id,
        request_index=int(row.total_runs),
        tags={
            "pipeline": pipeline.name,
            "pipeline_version": str(pipeline.version),
            "request_id": row.id,
            "request_step": step.name,
        },
        origin="requests",
    )


def _output_bytes(services: AppContext, sample: SampleRun, name: str) -> bytes:
    """One output file of a sample run, read from that run's folder."""
    found = next((f for f in sample.output_files if f.get("name") == name), None)
    if found is None:
        raise NotFound(f"sample run {sample.id} has no output {name}")
    path: Path = run_service.log_file(services, sample.id, found.get("location"))
    return path.read_bytes()


async def _skip(services: AppContext, request_id: str, why: str) -> None:
    await _move(services, request_id, "skipped", f"step skipped: {why}")


async def _move(services: AppContext, request_id: str, to: str, reason: str) -> None:
    now = utcnow()
    async with services.db.write() as conn:
        if await request_rows.set_step_state(conn, request_id, "waiting", to, now):
            await state_machine.record_request_event(conn, request_id, "step", now=now, actor=ACTOR, reason=reason)
