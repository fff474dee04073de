"""The overview page (docs/ui.md): runs by state, per day and durations per pipeline as inline SVG
with tables of the same numbers, over the caller's groups or one of them, never another's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from flowdeck.services.core.context import AppContext
from flowdeck.services.runs.overview import summarise
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.integration.test_ui import DEMO_RUN, WES, sign_in
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

Lab = tuple[AppContext, httpx.AsyncClient]


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[Lab]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "alice", groups={"lab-a": "member", "lab-c": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        yield services, http


async def _submit(http: httpx.AsyncClient, who: str, group: str, seconds: str) -> str:
    form = {**DEMO_RUN, "research_group": group, "workflow_engine_parameters": f'{{"duration_seconds": "{seconds}"}}'}
    answer = await http.post(f"{WES}/runs", data=form, headers=basic(who))
    assert answer.status_code == 200, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


async def _until_complete(services: AppContext, http: httpx.AsyncClient, run_id: str) -> None:
    worker = Worker(services)
    for _ in range(200):
        await worker.iterate()
        if (await http.get(f"{WES}/runs/{run_id}/status", headers=basic("alice"))).json()["state"] == "COMPLETE":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not complete")


def _table(page: str, caption: str) -> dict[str, list[str]]:
    """A data table's rows by their first cell."""
    found = re.search(rf"<caption[^>]*>{caption}</caption>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert found, page
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1))
    return {cells[0]: cells[1:] for cells in (re.findall(r"<td>(.*?)</td>", row) for row in rows)}


async def test_the_charts_show_the_callers_groups_and_one_group_at_a_time(lab: Lab) -> None:
    services, http = lab
    done = await _submit(http, "alice", "lab-a", "0")
    await _until_complete(services, http, done)
    await _submit(http, "alice", "lab-c", "600")
    await _submit(http, "bob", "lab-b", "600")
    await _submit(http, "bob", "lab-b", "600")
    await sign_in(http, "alice")
    page = await http.get("/ui/overview")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert '<a href="/ui/overview">Overview</a>' in page.text
    assert page.text.count('<svg role="img"') == 3
    assert '<title id="t-states">Runs by state, your groups</title>' in page.text
    states = _table(page.text, "Runs by state")
    assert sum(int(n[0]) for n in states.values()) == 2  # bob's two runs are not counted
    assert states["COMPLETE"] == ["1"]
    today = datetime.now(UTC).date().isoformat()
    per_day = _table(page.text, "Runs per day")
    assert len(per_day) == 30
    assert per_day[today] == ["2"]
    assert sum(int(n[0]) for n in per_day.values()) == 2
    durations = _table(page.text, "Run durations per pipeline")
    assert list(durations) == ["(workflow)"]
    assert durations["(workflow)"][0] == "1"

    one = (await http.get("/ui/overview?group=lab-c")).text
    assert list(_table(one, "Runs by state")) == ["QUEUED"]
    assert _table(one, "Runs per day")[today] == ["1"]
    assert "No completed runs" in one
    assert '<option value="lab-c" selected>' in one
    assert (await http.get("/ui/overview?group=lab-b")).status_code == 404  # bob's group
    assert (await http.get("/ui/overview?group=no-such")).status_code == 404


def test_median_and_90th_percentile_per_pipeline() -> None:
    found = summarise([("a", 10.0), ("a", 20.0), ("a", 30.0), ("b", 5.0), (None, 7.0), ("a", 40.0)])
    by_name = {d.pipeline: (d.runs, d.median, round(d.p90, 1)) for d in found}
    assert by_name == {"a": (4, 25.0, 37.0), "b": (1, 5.0, 5.0), "(workflow)": (1, 7.0, 7.0)}
