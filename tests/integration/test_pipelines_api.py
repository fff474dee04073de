"""The pipeline catalog over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowdeck.domain.principal import Principal
from flowdeck.errors import ConfigurationError, NotFound
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Catalog
from flowdeck.services.runs.pipeline_runs import visible_pipeline
from tests.conftest import make_settings


async def test_list_get_and_schema(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/pipelines")).json()
    names = {p["name"] for p in listed["pipelines"]}
    assert {"gatk_variant_calling", "rnaseq_deseq2", "hello_galaxy"} <= names
    one = (await api.get("/pipelines/gatk_variant_calling")).json()
    assert one["versions"] == ["2.0.0", "1.0.0"]  # 2.0.0 real (Snakemake), 1.0.0 the simulation
    assert one["backend"] == "snakemake"
    schema = await api.get("/pipelines/gatk_variant_calling/schema")
    assert schema.json()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    missing = await api.get("/pipelines/nope")
    assert missing.status_code == 404
    assert "gatk_variant_calling" in missing.json()["detail"]


async def test_group_limited_pipelines_are_hidden(services: AppContext, tmp_path: Path) -> None:
    source = (Catalog.load().get("gatk_variant_calling", "1.0.0").source).read_text()
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "p.yaml").write_text(source.replace("research_groups: []", "research_groups: [lab]"))
    services.catalog = Catalog.load(folder)
    with pytest.raises(NotFound):
        visible_pipeline(services, Principal("eve", groups={"other": "member"}), "gatk_variant_calling")
    assert visible_pipeline(services, Principal("ann", groups={"lab": "member"}), "gatk_variant_calling")


def test_a_broken_catalog_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nversion: 1\n")
    with pytest.raises(ConfigurationError, match=r"bad\.yaml: version"):
        AppContext.create(make_settings(tmp_path, pipelines_dir=tmp_path))
