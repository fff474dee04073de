"""The Workflow Run RO-Crate of a real Galaxy run (issue 20), like the CWL, Snakemake and WDL
crates of tests/integration/test_ro_crate.py, on this folder's shared Galaxy.

A ``flowdeck_sort_upper`` run (two Galaxy jobs: sort, upper) through ``POST /jobs``, then its crate
from ``GET /ga4gh/wes/v1/runs/{id}/ro-crate``: Workflow Run Crate 0.5 and, since Galaxy's job
records give per-step detail (flowdeck's tasks), Provenance Run Crate 0.5; each output's SHA-256
and size against the bytes in the zip, and against the output flowdeck serves; the validator when
installed (offline: see tests/support/crate_validator.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rocrate.rocrate import ROCrate

from tests.integration.galaxy.conftest import INPUT_TEXT
from tests.integration.galaxy.test_jobs_seed000 import (
    FINAL,
    SORTED_UPPER,
    WES,
    Stack,
    galaxy_settings,
    open_stack,
    output_bytes,
    seed_000,
    submit,
    upload,
)
from tests.integration.test_ro_crate import PROFILE, PROVENANCE, _crate, _ids
from tests.support.crate_validator import validate
from tests.support.galaxy import GalaxyServer

pytestmark = [pytest.mark.galaxy, pytest.mark.slow]


@pytest.fixture
async def stack(galaxy_server: GalaxyServer, tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack(galaxy_settings(tmp_path, galaxy_server)) as ready:
        yield ready


async def test_crate_of_a_galaxy_run(stack: Stack, tmp_path: Path) -> None:
    dataset_id = await upload(stack.api)
    job = await submit(stack.api, seed_000(dataset_id))
    assert (await stack.drive(job["id"], FINAL))["state"] == "completed"
    served = await output_bytes(stack.api, job["id"])

    folder = await _crate(stack.api, f"{WES}/runs/{job['id']}/ro-crate", tmp_path / "wes")
    crate = ROCrate(folder)

    assert {PROFILE, PROVENANCE} <= set(_ids(crate.root_dataset["conformsTo"]))
    workflow = crate.mainEntity
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= set(workflow.type)
    assert workflow["programmingLanguage"].id.endswith("#galaxy")
    assert workflow["name"] == "flowdeck_sort_upper"
    # the workflow as Galaxy exports it (.ga), in the crate: not a galaxy:// reference
    exported = json.loads((folder / workflow.id).read_text())
    assert (workflow.id, exported["a_galaxy_workflow"]) == ("workflow/flowdeck_sort_upper.ga", "true")
    assert {step["tool_id"] for step in exported["steps"].values()} >= {"sort1", "flowdeck_upper"}
    (action,) = [a for a in crate.get_by_type("CreateAction") if a["instrument"] is workflow]
    assert action["startTime"] <= action["endTime"]
    assert _ids(action["actionStatus"]) == ["http://schema.org/CompletedActionStatus"]
    # the input dataset by reference, with its checksum
    (dataset,) = [v for v in action["object"] if v.get("identifier") == dataset_id]
    assert dataset["sha256"] == hashlib.sha256(INPUT_TEXT.encode()).hexdigest()
    assert int(dataset["contentSize"]) == len(INPUT_TEXT.encode())
    # outputs: in the zip, checksums matching their bytes and the bytes flowdeck serves
    (result,) = action["result"]
    content = (folder / result.id).read_bytes()
    assert content == served["sorted_upper"] == SORTED_UPPER.encode()
    assert result["sha256"] == hashlib.sha256(content).hexdigest()
    assert int(result["contentSize"]) == len(content)
    # Provenance Run Crate: Galaxy's two jobs as the steps' actions, organised by Galaxy
    (organize,) = crate.get_by_type("OrganizeAction")
    assert organize["result"] is action
    assert organize["instrument"]["softwareVersion"].startswith("Galaxy ")
    assert [c["instrument"]["name"] for c in organize["object"]] == ["sort", "upper"]
    assert all(
        _ids(c["object"]["actionStatus"]) == ["http://schema.org/CompletedActionStatus"] for c in organize["object"]
    )
    events = json.loads((folder / "events.json").read_text())["events"]
    assert events[-1]["to_state"] == "COMPLETE"
    validate(folder, "provenance-run-crate-0.5")
