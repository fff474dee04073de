"""Launching a pipeline from the UI (docs/ui.md): the catalog page, a form made from the
pipeline's schema, the check (dry run), the launch, and validation problems shown beside their
field, through the same jobs service as ``POST /jobs``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.integration.test_ui import csrf_of, sign_in
from tests.support.basic_app import add_user, basic_app, basic_settings

Lab = tuple[AppContext, httpx.AsyncClient]


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[Lab]:
    settings = basic_settings(db_settings.model_copy(update={"backends": ["demo", "cwltool"]}))
    async with basic_app(settings) as (_, services, http):
        await add_user(services, "alice", groups={"lab-a": "member"})
        assert (await sign_in(http, "alice")).status_code == 303
        yield services, http


async def test_the_catalog_page_lists_pipelines_and_a_form_follows_the_schema(lab: Lab) -> None:
    _, http = lab
    catalog = await http.get("/ui/launch")
    assert catalog.status_code == 200
    assert 'href="/ui/launch/hello_cwl"' in catalog.text
    form = (await http.get("/ui/launch/gatk_variant_calling")).text
    assert re.search(r'<select id="p-caller" name="p.caller"', form)  # an enum is a choice
    assert re.search(r'<input type="number" id="p-quality_threshold"', form)
    assert re.search(r'<input type="text" id="p-sample_id" name="p.sample_id" value="" required>', form)
    missing = await http.get("/ui/launch/no_such_pipeline")
    assert missing.status_code == 404


async def test_check_shows_the_resolved_run_and_launch_starts_it(lab: Lab) -> None:
    _, http = lab
    page = await http.get("/ui/launch/hello_cwl")
    assert "One value a line." in page.text
    fields = {"csrf": csrf_of(page.text), "p.lines": "first line\nsecond line\n", "description": "from the form"}
    checked = await http.post("/ui/launch/hello_cwl", data={**fields, "action": "check"})
    assert checked.status_code == 200
    assert '"lines": [' in checked.text
    assert "second line" in checked.text

    launched = await http.post("/ui/launch/hello_cwl", data={**fields, "action": "launch"})
    assert launched.status_code == 303
    run_id = launched.headers["location"].removeprefix("/ui/runs/")
    page = await http.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200
    assert "from the form" in page.text
    assert "second line" in page.text  # the parameters, as the run page shows them


async def test_a_bad_value_is_shown_beside_its_field_and_nothing_runs(lab: Lab) -> None:
    _, http = lab
    page = await http.get("/ui/launch/hello_cwl")
    too_long = "x" * 201
    answer = await http.post(
        "/ui/launch/hello_cwl", data={"csrf": csrf_of(page.text), "p.lines": too_long, "action": "launch"}
    )
    assert answer.status_code == 422
    assert 'class="field invalid"' in answer.text
    assert too_long in answer.text  # what was typed is kept
    runs = await http.get("/ui/")
    assert "/ui/runs/" not in runs.text


async def test_a_launch_without_the_csrf_token_is_refused(lab: Lab) -> None:
    _, http = lab
    refused = await http.post("/ui/launch/hello_cwl", data={"p.lines": "x", "action": "launch"})
    assert refused.status_code == 403
