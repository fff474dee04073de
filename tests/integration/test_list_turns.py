"""Paged list reads take turns (api/admission.py): which routes, in what order, and a turn never
held by a client that does not read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from flowdeck.api.admission import ListTurns
from flowdeck.api.app import create_app
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.integration.test_isolation import JOB

LISTS = {
    "/ga4gh/wes/v1/runs",
    "/ga4gh/wes/v1/runs/abc/tasks",
    "/jobs",
    "/requests",
    "/requests/abc",
    "/datasets",
    "/ui/",
    "/ui/rows",
}
NOT_LISTS = {
    "/ga4gh/wes/v1/runs/abc",
    "/ga4gh/wes/v1/runs/abc/status",
    "/ga4gh/wes/v1/service-info",
    "/jobs/abc",
    "/datasets/abc",
    "/events",
    "/healthz",
    "/metrics",
    "/requests/abc/extra",
    "/ui/runs/abc",
    "/ui/runs/abc/state",
}


def _scope(path: str, method: str = "GET") -> Scope:
    return {"type": "http", "method": method, "path": path}


def test_the_paged_list_routes_of_the_app_take_turns_and_nothing_else(tmp_path: Path) -> None:
    turns = ListTurns(create_app(Settings(data_dir=tmp_path)).routes, 1)
    assert {path for path in LISTS | NOT_LISTS if turns.admits(_scope(path))} == LISTS
    assert not turns.admits(_scope("/jobs", "POST"))
    assert not turns.admits(_scope("/ga4gh/wes/v1/runs", "POST"))


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Page:
    """An ASGI app answering a head then a body; records when its work started."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.log.append(f"start {scope['path']}")
        await asyncio.sleep(0.01)  # the page's work, in its turn
        self.log.append(f"rendered {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})


async def test_one_turn_at_a_time_in_arrival_order() -> None:
    log: list[str] = []
    turns = ListTurns([], 1)
    app = Page(log)

    async def sent(message: Message) -> None:
        pass

    await asyncio.gather(*(turns.run(app, _scope(f"/{n}"), _receive, sent) for n in range(3)))
    assert log == ["start /0", "rendered /0", "start /1", "rendered /1", "start /2", "rendered /2"]


async def test_a_client_that_never_reads_its_page_does_not_hold_the_turn() -> None:
    log: list[str] = []
    turns = ListTurns([], 1)
    app = Page(log)
    stuck = asyncio.Event()

    async def never_drains(message: Message) -> None:
        if message["type"] == "http.response.body":
            await stuck.wait()  # a full socket buffer: the body never leaves

    async def sent(message: Message) -> None:
        pass

    first = asyncio.create_task(turns.run(app, _scope("/stuck"), _receive, never_drains))
    await asyncio.wait_for(turns.run(app, _scope("/next"), _receive, sent), timeout=5)
    assert log[-2:] == ["start /next", "rendered /next"]
    assert not first.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failing_page_hands_its_turn_on() -> None:
    turns = ListTurns([], 1)

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def sent(message: Message) -> None:
        pass

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(turns.run(broken, _scope("/jobs"), _receive, sent), timeout=5)
    log: list[str] = []
    await asyncio.wait_for(turns.run(Page(log), _scope("/jobs"), _receive, sent), timeout=5)
    assert log == ["start /jobs", "rendered /jobs"]


async def test_lists_taking_turns_answer_what_they_answer_alone(db_settings: Settings) -> None:
    """Forty list reads at once, one turn: each answers exactly what it answers alone, and polls
    sent among them answer too."""
    settings = db_settings.model_copy(update={"list_concurrency": 1})
    services = AppContext.create(settings)
    app = create_app(settings, services)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for n in range(12):
                    answer = await client.post("/jobs", json={**JOB, "description": f"job {n}"})
                    assert answer.status_code in (200, 201), answer.text
                run_id = (await client.get("/ga4gh/wes/v1/runs", params={"page_size": 1})).json()["runs"][0]["run_id"]
                paths = ["/ga4gh/wes/v1/runs?page_size=5", "/jobs?page_size=7", "/requests", "/datasets"]
                alone = {path: (await client.get(path)).json() for path in paths}
                status = f"/ga4gh/wes/v1/runs/{run_id}/status"
                answers = await asyncio.gather(*(client.get(p) for p in (paths * 10 + [status] * 10)))
    finally:
        await services.close()
    assert all(a.status_code == 200 for a in answers)
    for answer in answers:
        path = str(answer.url).removeprefix("http://t")
        if path in alone:
            assert answer.json() == alone[path]
