"""Snakemake ``container:`` with containers on: refused at submit (Snakemake runs containers
only through apptainer, which this service does not have; docs/adr/0013), not run on the host."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from flowdeck.backends.registry import Registry, load_class
from flowdeck.domain.runs import RunSpec
from flowdeck.errors import InvalidInput
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings

pytestmark = pytest.mark.skipif(not load_class("snakemake").available(), reason="snakemake is not installed")

WES = "/ga4gh/wes/v1"
SNAKEFILE = Path(__file__).resolve().parents[1] / "workflows" / "snakemake" / "Snakefile"
RULE = 'include: "rules/extra.smk"\n'
EXTRA = 'rule extra:\n    output: "extra.txt"\n    container: "docker://debian:12"\n    shell: "touch {output}"\n'


def spec(data: Path) -> RunSpec:
    folder = data / "runs" / "s1"
    (folder / "attachments" / "rules").mkdir(parents=True)
    (folder / "attachments" / "Snakefile").write_text(SNAKEFILE.read_text() + RULE)
    (folder / "attachments" / "rules" / "extra.smk").write_text(EXTRA)
    return RunSpec(
        run_id="s1",
        workflow_type="SMK",
        workflow_type_version="9",
        workflow_url="Snakefile",
        workflow_params={"message": "x"},
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def test_an_included_container_directive_is_refused_with_containers_on(tmp_path: Path) -> None:
    backend = load_class("snakemake")(Settings(data_dir=tmp_path / "data", containers=True))
    with pytest.raises(InvalidInput, match=r"rules/extra.smk line 3: a container: directive.*apptainer"):
        backend.validate(spec(tmp_path / "data"))


def test_with_containers_off_the_directive_is_ignored_as_before(tmp_path: Path) -> None:
    load_class("snakemake")(Settings(data_dir=tmp_path / "data")).validate(spec(tmp_path / "data"))


@pytest.fixture
def smk_services(services: AppContext) -> AppContext:
    services.settings.backends = ["demo", "snakemake"]
    services.settings.containers = True
    services.backends = Registry(services.settings)
    return services


async def test_the_refusal_is_a_wes_400_and_nothing_is_stored(smk_services: AppContext, api: httpx.AsyncClient) -> None:
    form = {
        "workflow_type": "SMK",
        "workflow_type_version": "9",
        "workflow_url": "Snakefile",
        "workflow_params": json.dumps({"message": "x"}),
    }
    text = SNAKEFILE.read_text() + 'rule boxed:\n    container: "docker://debian:12"\n    shell: "true"\n'
    files = {"workflow_attachment": ("Snakefile", text.encode())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    assert response.status_code == 400, response.text
    assert "container: directive" in response.json()["msg"]
    assert (await api.get(f"{WES}/runs")).json()["runs"] == []
