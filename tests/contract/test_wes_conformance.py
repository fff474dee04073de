"""The official GA4GH WES 1.1.0 document is the contract: schemathesis drives every operation in it.

The app runs in-process (ASGI, lifespan included) on a fresh, migrated SQLite database. Before any
request, real runs are seeded (one COMPLETE with tasks, one EXECUTOR_ERROR, one QUEUED, one CANCELING)
and their ids, their task ids and a valid submission are added to the spec as explicit examples, so
the generated requests hit existing runs and ``POST /runs`` also creates real ones. Schemathesis also
reuses ids that earlier responses returned (``POST /runs`` runs first).

Every response must: not be a server error, have a status code the spec documents for the operation,
have the documented content type, and match the documented schema.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from flowdeck.api.app import create_app
from flowdeck.db.migrate import upgrade
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.states import State
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import service as run_service
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings

SPEC = Path(__file__).resolve().parents[2] / "spec" / "wes-1.1.0.openapi.yaml"
BASE_URL = "http://testserver/ga4gh/wes/v1"
# Generated cases per operation (and phase); raise it for a deeper search, e.g. =1000.
EXAMPLES = int(os.environ.get("FLOWDECK_CONFORMANCE_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
]
VALID_SUBMISSION = {
    "workflow_type": "DEMO",
    "workflow_type_version": "1.0",
    "workflow_url": "demo://conformance",
    "workflow_params": json.dumps({"sample": "S1"}),
    "tags": json.dumps({"suite": "conformance"}),
    "workflow_engine_parameters": json.dumps({"duration_seconds": "0.1"}),
}


def _new_run(outcome: str, duration: str = "0.1") -> run_service.NewRun:
    return run_service.NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://seed",
        tags={"suite": "conformance", "outcome": outcome},
        workflow_engine_parameters={"outcome": outcome, "duration_seconds": duration},
    )


async def _wait_for(services: AppContext, worker: Worker, run_ids: dict[str, State]) -> None:
    for _ in range(500):
        await worker.iterate()
        states = {run_id: (await run_service.get_visible(services, run_id, LOCAL_USER)).state for run_id in run_ids}
        if states == run_ids:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"seeded runs did not settle: {states}")


async def _seed(settings: Settings) -> tuple[list[str], list[tuple[str, str]]]:
    """Runs in several states, and the task ids of the finished ones."""
    services = AppContext.create(settings)
    try:
        done = await run_service.submit(services, _new_run("success"), LOCAL_USER)
        failed = await run_service.submit(services, _new_run("failure"), LOCAL_USER)
        await _wait_for(services, Worker(services), {done: State.COMPLETE, failed: State.EXECUTOR_ERROR})
        queued = await run_service.submit(services, _new_run("success", "60"), LOCAL_USER)
        canceling = await run_service.submit(services, _new_run("success", "60"), LOCAL_USER)
        await run_service.cancel(services, canceling, LOCAL_USER)
        tasks, _ = await run_service.task_page(services, done, LOCAL_USER, None, None)
        return [done, failed, queued, canceling], [(done, str(task["id"])) for task in tasks]
    finally:
        await services.close()


@dataclass
class Seeded:
    """What the seeding fixture made; read by the generation hook at draw time."""

    run_ids: list[str] = field(default_factory=list)
    tasks: list[tuple[str, str]] = field(default_factory=list)


SEEDED = Seeded()


def _spec() -> dict[str, Any]:
    """The official document, plus one explicit example: a valid submission."""
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    form = spec["paths"]["/runs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    form["example"] = VALID_SUBMISSION
    return spec


schema = schemathesis.openapi.from_dict(_spec())


@schema.hook
def before_generate_path_parameters(context: HookContext, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Path parameters are generated, or name a seeded run (and one of its tasks).

    Seeded ids are read when a case is drawn: schemathesis builds its strategies (and draws the
    examples phase's cases) at collection, before the fixture has seeded anything.
    """
    with_task = context.operation is not None and "{task_id}" in context.operation.path

    def pick(drawn: tuple[dict[str, Any], int]) -> dict[str, Any]:
        generated, index = drawn
        if with_task and SEEDED.tasks:
            run_id, task_id = SEEDED.tasks[index % len(SEEDED.tasks)]
            return {"run_id": run_id, "task_id": task_id}
        if not with_task and SEEDED.run_ids:
            return {"run_id": SEEDED.run_ids[index % len(SEEDED.run_ids)]}
        return generated

    return st.one_of(strategy, st.tuples(strategy, st.integers(min_value=0, max_value=63)).map(pick))


@pytest.fixture(scope="module")
def wes_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The app on a fresh, migrated SQLite database holding the seeded runs."""
    settings = make_settings(tmp_path_factory.mktemp("conformance"))
    upgrade(settings)
    SEEDED.run_ids, SEEDED.tasks = asyncio.run(_seed(settings))
    return create_app(settings)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@schema.parametrize()
def test_wes_conformance(case: Case, wes_app: FastAPI) -> None:
    response = case.call_and_validate(base_url=BASE_URL, app=wes_app, checks=CHECKS)
    if case.operation.label == "POST /runs" and response.status_code == 200:
        _read_back(response.json()["run_id"], wes_app)


def _read_back(run_id: str, app: FastAPI) -> None:
    """A run that POST /runs accepted is stored: every per-run read finds it, in the spec's shapes."""
    for path in ("/runs/{run_id}", "/runs/{run_id}/status", "/runs/{run_id}/tasks"):
        follow = schema[path]["GET"].Case(path_parameters={"run_id": run_id})
        assert follow.call_and_validate(base_url=BASE_URL, app=app, checks=CHECKS).status_code == 200, path
