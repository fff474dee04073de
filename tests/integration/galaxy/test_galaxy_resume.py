"""Galaxy's job re-use (issue 20): a resumed rerun of a Galaxy workflow run, and the
``use_cached_jobs`` engine parameter, against the real Galaxy. A re-used step is a new Galaxy job
holding the outputs of the equal finished one (``copied_from_job_id``); its task says so."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest

from flowdeck.backends.galaxy.backend import GalaxyBackend
from flowdeck.domain.states import State
from tests.integration.galaxy.helpers import submit as submit_spec
from tests.integration.galaxy.helpers import wait_terminal
from tests.integration.galaxy.test_jobs_seed000 import (
    FINAL,
    WES,
    Stack,
    assert_sorted_upper,
    seed_000,
    stack,
    submit,
    upload,
)
from tests.integration.galaxy.test_tool_requests import tool_spec
from tests.support.galaxy import GalaxyServer

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]
__all__ = ["stack"]  # the fixture


async def task_names(stack: Stack, job_id: str) -> list[str]:
    tasks = (await stack.api.get(f"{WES}/runs/{job_id}/tasks")).json()["task_logs"]
    return [str(t["name"]) for t in tasks]


async def test_resumed_rerun_reuses_the_finished_steps_galaxy_jobs(stack: Stack) -> None:
    job = await submit(stack.api, seed_000(await upload(stack.api)))
    assert (await stack.drive(job["id"], FINAL))["state"] == "completed"

    answer = await stack.api.post(f"/jobs/{job['id']}/rerun", json={"resume": True})

    assert answer.status_code == 201, answer.text
    resumed = await stack.drive(answer.json()["id"], FINAL)
    assert resumed["state"] == "completed", resumed
    assert resumed["rerun_of"] == job["id"]
    assert resumed["invocation_id"] != job["invocation_id"]
    assert await task_names(stack, job["id"]) == ["sort", "upper"]
    assert await task_names(stack, resumed["id"]) == ["sort (re-used)", "upper (re-used)"]
    await assert_sorted_upper(stack.api, resumed["id"])


async def test_rerun_without_resume_runs_the_steps_again(stack: Stack) -> None:
    job = await submit(stack.api, seed_000(await upload(stack.api)))
    assert (await stack.drive(job["id"], FINAL))["state"] == "completed"

    again = await stack.drive((await stack.api.post(f"/jobs/{job['id']}/rerun")).json()["id"], FINAL)

    assert again["state"] == "completed", again
    assert await task_names(stack, again["id"]) == ["sort", "upper"]


def test_use_cached_jobs_lets_galaxy_reuse_an_equal_tool_job(
    backend: GalaxyBackend, galaxy_server: GalaxyServer
) -> None:
    from bioblend.galaxy import GalaxyInstance

    gi = GalaxyInstance(galaxy_server.url, key=galaxy_server.api_key)
    history = gi.histories.create_history(f"cache {uuid4().hex[:8]}")["id"]
    dataset_id = gi.tools.paste_content("cached\n", history, file_type="txt")["outputs"][0]["id"]
    gi.datasets.wait_for_dataset(dataset_id, maxwait=180)
    first = replace(tool_spec(backend, "flowdeck_upper", {}), dataset={"galaxy_dataset_id": dataset_id})
    run_id = f"t-{uuid4().hex[:12]}"
    second = replace(
        first, run_id=run_id, workdir=first.workdir.parent / run_id, engine_parameters={"use_cached_jobs": "true"}
    )

    ran = wait_terminal(backend, submit_spec(backend, first))
    reused = wait_terminal(backend, submit_spec(backend, second))

    assert (ran.state, reused.state) == (State.COMPLETE, State.COMPLETE)
    assert [t.name for t in ran.tasks or []] == ["flowdeck_upper"]
    assert [t.name for t in reused.tasks or []] == ["flowdeck_upper (re-used)"]
