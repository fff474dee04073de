"""The references registry: files, GET /references, `flowdeck references index`, and a pipeline's
reference parameter checked at submit. Indexes are built for real (bwa, samtools, salmon, kallisto)
on tiny synthetic sequences."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import httpx
import pytest

from flowdeck.cli.main import main
from flowdeck.errors import ConfigurationError
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines import references
from flowdeck.services.pipelines.catalog import Catalog
from flowdeck.settings import Settings
from tests.support import synth

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("bwa", "samtools", "salmon", "kallisto")),
    reason="the index tools (bwa samtools salmon kallisto) are not installed",
)

PIPELINE = """
name: aligner
version: "1.0.0"
description: A demo pipeline whose genome parameter names a registered reference.
backend: demo
target: {simulation: aligner}
parameters:
  required: [genome]
  properties:
    genome: {type: string, x-flowdeck-reference: genome}
"""


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A genome and a transcriptome described in a registry folder, not indexed."""
    folder = tmp_path_factory.mktemp("references")
    genome = synth.make_genome(lengths=(6_000,))
    synth.write_fasta(folder / "tiny.fa", genome.contigs.items())
    rng = random.Random(3)
    synth.write_fasta(folder / "tx.fa", [(f"tx{i}", synth.random_sequence(rng, 800)) for i in range(6)])
    (folder / "tiny.yaml").write_text("name: tiny\nkind: genome\nfasta: tiny.fa\ndescription: six kb\n")
    (folder / "tx.yaml").write_text("name: tx\nkind: transcriptome\nfasta: tx.fa\nindexes: {salmon: idx/salmon}\n")
    return folder


@pytest.fixture
def registry_dir(reference_files: Path, tmp_path: Path) -> Path:
    """A fresh copy per test: one test's index build never makes another's pass."""
    copy = tmp_path / "refs"
    shutil.copytree(reference_files, copy)
    return copy


@pytest.fixture
def ref_services(services: AppContext, registry_dir: Path, tmp_path: Path) -> AppContext:
    services.settings.references_dir = registry_dir
    (tmp_path / "pipes").mkdir()
    (tmp_path / "pipes" / "aligner.yaml").write_text(PIPELINE)
    services.catalog = Catalog.load(tmp_path / "pipes")
    return services


async def test_listed_unindexed_then_indexed_by_the_cli(
    api: httpx.AsyncClient,
    ref_services: AppContext,
    registry_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = (await api.get("/references")).json()
    assert [r["name"] for r in listed["references"]] == ["tiny", "tx"]
    tiny = listed["references"][0]
    assert tiny["kind"] == "genome"
    assert tiny["indexed"] is False
    assert tiny["fasta"] == "tiny.fa"
    assert str(registry_dir) not in str(listed)  # no server path is shown
    monkeypatch.setenv("FLOWDECK_REFERENCES_DIR", str(registry_dir))
    assert main(["references", "list"]) == 0
    listed_out = capsys.readouterr().out
    assert "tiny\tgenome\t" in listed_out
    assert "not indexed (missing: bwa, faidx, dict)" in listed_out
    assert main(["references", "index", "tiny"]) == 0
    assert main(["references", "index", "tx", "--threads", "1"]) == 0
    for name, tools in (("tiny", {"bwa", "faidx", "dict"}), ("tx", {"salmon", "kallisto"})):
        body = (await api.get(f"/references/{name}")).json()
        assert body["indexed"] is True
        assert set(body["indexes"]) == tools
    assert (registry_dir / "idx" / "salmon" / "versionInfo.json").is_file()
    assert (registry_dir / "tiny.fa.bwt").is_file()
    assert (registry_dir / "tiny.fa.fai").is_file()
    missing = await api.get("/references/hg99")
    assert missing.status_code == 404
    assert "tiny, tx" in missing.json()["detail"]


async def test_reference_parameter_is_checked_at_submit(api: httpx.AsyncClient, ref_services: AppContext) -> None:
    async def submit(genome: str) -> httpx.Response:
        body = {"pipeline_name": "aligner", "parameters": {"genome": genome}}
        return await api.post("/jobs", json=body, params={"dry_run": "true"})

    unknown = await submit("hg38")
    assert unknown.status_code == 422
    problem = unknown.json()["errors"][0]
    assert problem["pointer"] == "/genome"
    assert problem["rule"] == "reference"
    assert "no genome named 'hg38'" in problem["message"]
    assert "indexed genomes here: none" in problem["message"]
    unindexed = (await submit("tiny")).json()["errors"][0]["message"]
    assert "not indexed yet (missing: bwa, faidx, dict)" in unindexed
    assert "flowdeck references index tiny" in unindexed
    assert "is a transcriptome, not a genome" in (await submit("tx")).json()["errors"][0]["message"]
    references.build_indexes(references.load_registry(ref_services.settings).get("tiny"))
    accepted = await submit("tiny")
    assert accepted.status_code == 200, accepted.text


def test_broken_reference_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nkind: exome\nfasta: a.fa\n")
    (tmp_path / "b.yaml").write_text("name: b\nkind: genome\nfasta: b.fa\nindexes: {salmon: x}\n")
    (tmp_path / "c.yaml").write_text("name: c\nkind: genome\n")
    with pytest.raises(ConfigurationError) as caught:
        references.load_registry(Settings(references_dir=tmp_path))
    detail = caught.value.detail
    assert "3 broken file(s)" in detail
    assert "a.yaml: kind" in detail
    assert "b.yaml: indexes" in detail
    assert "c.yaml: fasta: is required" in detail


def test_a_failed_build_leaves_no_index(tmp_path: Path) -> None:
    (tmp_path / "bad.fa").write_text("this is not FASTA\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nkind: transcriptome\nfasta: bad.fa\n")
    ref = references.load_registry(Settings(references_dir=tmp_path)).get("bad")
    with pytest.raises(references.IndexBuildFailed, match="salmon index failed"):
        references.build_indexes(ref)
    assert ref.missing == ["salmon", "kallisto"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "bad.yaml"]
