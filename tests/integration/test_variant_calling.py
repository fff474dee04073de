"""gatk_variant_calling 2.0.0 for real, checked against truth: a synthetic genome with planted SNPs
and indels (tests/support/synth.py), paired reads simulated from it, the pipeline run through
POST /jobs on Snakemake with Debian's tools, and the VCF the service serves scored against the
planted SNPs. Also seed 002's GATK body (refused: no GATK here) and bad inputs.

The test registry registers the synthetic genome twice: as ``synth`` and as ``hg38`` (the name
seed 002's body gives), both pointing at the synthetic data, so that body reaches the GATK check.
The real runs use SQLite only: the database part of a run is covered on every database elsewhere.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.api.app import create_app
from flowdeck.backends.registry import load_class
from flowdeck.db.migrate import upgrade
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines import references
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings
from tests.support import synth

TOOLS = ("bwa", "samtools", "bcftools", "bgzip", "tabix", "freebayes", "fastp")
pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not load_class("snakemake").available(), reason="snakemake is not installed"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason=f"needs {' '.join(TOOLS)}"),
]
SEED_002_GATK = {
    "pipeline_name": "gatk_variant_calling",
    "parameters": {
        "sample_id": "WGS_001",
        "reference_genome": "hg38",
        "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz",
        "fastq_r2": "s3://input-data/WGS_001_R2.fastq.gz",
        "caller": "HaplotypeCaller",
        "quality_threshold": 30,
        "depth_threshold": 10,
    },
    "research_group": "cancer_genomics_lab",
    "description": "Variant calling for tumor sample WGS_001",
}


@dataclass
class Data:
    folder: Path
    genome: synth.Genome
    r1: Path
    r2: Path


@pytest.fixture(scope="module")
def data() -> Iterator[Data]:
    """The synthetic genome registered (indexed as synth and hg38, not indexed as raw) and a sample.

    Not under pytest's tmp_path: that is private to root, and sandboxed runs read as another user."""
    folder = Path(tempfile.mkdtemp(prefix="flowdeck-vc-"))
    folder.chmod(0o755)
    try:
        yield _data(folder)
    finally:
        shutil.rmtree(folder)


def _data(folder: Path) -> Data:
    genome = synth.make_genome()
    refs = folder / "refs"
    refs.mkdir()
    synth.write_fasta(refs / "synth.fa", genome.contigs.items())
    shutil.copy(refs / "synth.fa", refs / "raw.fa")
    for name, fasta in (("synth", "synth.fa"), ("hg38", "synth.fa"), ("raw", "raw.fa")):
        (refs / f"{name}.yaml").write_text(f"name: {name}\nkind: genome\nfasta: {fasta}\n")
    registry = references.Registry([references.parse_reference(refs / "synth.yaml")])
    references.build_indexes(registry.get("synth"))
    r1, r2 = synth.write_sample(genome, folder)
    return Data(folder, genome, r1, r2)


@pytest.fixture
async def vc(tmp_path: Path, data: Data) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    settings = make_settings(
        tmp_path,
        backends=["demo", "snakemake"],
        references_dir=data.folder / "refs",
        sandbox_read_only_paths=[data.folder],
        dataset_file_roots=[data.folder],  # file:// inputs are staged from the configured roots only
    )
    upgrade(settings)
    services = AppContext.create(settings)
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, services
    await services.close()


def job(data: Data, **parameters: Any) -> dict[str, Any]:
    given = {"sample_id": "S1", "reference_genome": "synth", "fastq_r1": data.r1.as_uri(), "fastq_r2": data.r2.as_uri()}
    given |= parameters
    return {
        "pipeline_name": "gatk_variant_calling",
        "parameters": {key: value for key, value in given.items() if value is not None},
        "research_group": "genomics",
    }


async def run_to_end(client: httpx.AsyncClient, services: AppContext, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """Submit every body, drive a worker until every job has ended; the jobs as GET /jobs/{id} shows them."""
    ids = []
    for body in bodies:
        answer = await client.post("/jobs", json=body)
        assert answer.status_code in (200, 201, 202), answer.text
        ids.append(answer.json()["id"])
    worker = Worker(services)
    for _ in range(900):
        await worker.iterate()
        shown = [(await client.get(f"/jobs/{job_id}")).json() for job_id in ids]
        if all(job["state"] in ("completed", "failed", "canceled") for job in shown):
            return shown
        await asyncio.sleep(0.2)
    raise AssertionError(f"jobs {ids} did not end")


async def served_file(client: httpx.AsyncClient, run_id: str, suffix: str) -> bytes:
    listing = (await client.get(f"/ga4gh/wes/v1/runs/{run_id}/outputs")).json()
    found = next(f for f in listing["files"] if f["name"].endswith(suffix))
    return (await client.get(found["url"].replace("http://testserver", ""), follow_redirects=True)).content


async def test_planted_snps_are_called(vc: tuple[httpx.AsyncClient, AppContext], data: Data) -> None:
    """Both callers, run at once (two local runs on two cores), each scored on its own VCF."""
    client, services = vc
    callers = ("bcftools", "freebayes")
    shown = await run_to_end(client, services, *(job(data, caller=caller) for caller in callers))
    for caller, ended in zip(callers, shown, strict=True):
        assert ended["state"] == "completed", ended
        assert ended["parameters"]["caller"] == caller
        vcf = gzip.decompress(await served_file(client, ended["id"], "S1.vcf.gz")).decode()
        recall, precision = synth.recall_precision(synth.vcf_snps(vcf), data.genome.snps)
        assert recall >= 0.9, (caller, recall, precision)
        assert precision >= 0.9, (caller, recall, precision)
        header = next(line for line in vcf.splitlines() if line.startswith("#CHROM"))
        assert header.split("\t")[-1] == "S1"  # the read group's sample, from sample_id
        assert b"Summary numbers" in await served_file(client, ended["id"], "S1.bcftools_stats.txt")
        assert b"fastp" in await served_file(client, ended["id"], "S1.fastp.html")
        assert await served_file(client, ended["id"], "S1.vcf.gz.tbi")


async def test_reads_uploaded_as_datasets_are_used_by_id(vc: tuple[httpx.AsyncClient, AppContext], data: Data) -> None:
    """Issue 16: FASTQs uploaded through /datasets, named as dataset:<id>, staged from storage."""
    client, services = vc
    ids = []
    for reads in (data.r1, data.r2):
        files = {"file": (reads.name, reads.read_bytes())}
        answer = await client.post("/datasets", data={"research_group": "genomics"}, files=files)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    body = job(data, fastq_r1=f"dataset:{ids[0]}", fastq_r2=f"dataset:{ids[1]}")
    (ended,) = await run_to_end(client, services, body)
    assert ended["state"] == "completed", ended
    vcf = gzip.decompress(await served_file(client, ended["id"], "S1.vcf.gz")).decode()
    recall, precision = synth.recall_precision(synth.vcf_snps(vcf), data.genome.snps)
    assert recall >= 0.9, (recall, precision)
    assert precision >= 0.9, (recall, precision)
    events = (await client.get(f"/jobs/{ended['id']}/events")).json()["events"]
    staged = [e["reason"] for e in events if e["kind"] == "input_staged"]
    assert [line.split(" (")[0] for line in staged] == [
        f"/fastq_r1: dataset:{ids[0]} -> staged/0/S1_R1.fastq.gz",
        f"/fastq_r2: dataset:{ids[1]} -> staged/1/S1_R2.fastq.gz",
    ]
    assert f"({data.r1.stat().st_size} bytes, sha256:" in staged[0]


async def test_seed_002_gatk_body_is_refused_naming_the_callers(vc: tuple[httpx.AsyncClient, AppContext]) -> None:
    client, _ = vc
    for params in ({}, {"dry_run": "true"}):
        answer = await client.post("/jobs", json=SEED_002_GATK, params=params)
        assert answer.status_code == 422, answer.text
        problem = next(p for p in answer.json()["errors"] if p["pointer"] == "/caller")
        assert "GATK is not installed" in problem["message"]
        assert "callers this site has: bcftools, freebayes" in problem["message"]
    assert (await client.get("/jobs")).json()["total"] == 0
    tools = (await client.get("/pipelines/gatk_variant_calling")).json()["tools"]
    assert tools["gatk"] is None
    assert tools["bwa"].startswith("0.7.")
    assert set(tools) == {"fastp", "bwa", "samtools", "bcftools", "bgzip", "tabix", "freebayes", "gatk"}
    tags = (await client.get("/ga4gh/wes/v1/service-info")).json()["tags"]
    assert f"samtools {tools['samtools']}" in tags["tools"]
    assert "gatk" not in tags["tools"]


async def test_an_unindexed_reference_is_refused(vc: tuple[httpx.AsyncClient, AppContext], data: Data) -> None:
    client, _ = vc
    answer = await client.post("/jobs", json=job(data, reference_genome="raw"))
    assert answer.status_code == 422
    message = answer.json()["errors"][0]["message"]
    assert "genome 'raw' is not indexed yet" in message
    assert "indexed genomes here: hg38, synth" in message
    # The same rule at the request door: every run of a request is built the same way.
    sample = job(data)["parameters"] | {"reference_genome": "raw"}
    request = {"pipeline_name": "gatk_variant_calling", "samples": [sample], "research_group": "genomics"}
    answer = await client.post("/requests", json=request)
    assert answer.status_code == 422, answer.text
    assert "genome 'raw' is not indexed yet" in answer.text


async def test_bad_reads_fail_the_run_saying_why(vc: tuple[httpx.AsyncClient, AppContext], data: Data) -> None:
    client, services = vc
    not_fastq = data.folder / "bad_R1.fastq"
    not_fastq.write_text("sample,reads\nS1,12\n")
    short_r2 = data.folder / "short_R2.fastq.gz"
    short_r2.write_bytes(gzip.compress(b"".join(gzip.decompress(data.r2.read_bytes()).splitlines(True)[:400])))
    short_r1 = data.folder / "short_R1.fastq.gz"
    shutil.copy(data.r1, short_r1)
    bodies = [
        job(data, fastq_r1=not_fastq.as_uri(), fastq_r2=None),
        job(data, fastq_r1=short_r1.as_uri(), fastq_r2=short_r2.as_uri()),
    ]
    not_read, short = await run_to_end(client, services, *bodies)
    assert not_read["state"] == short["state"] == "failed"
    assert "check_reads" in not_read["error_message"]
    stderr = await task_stderr(client, not_read["id"], "check_reads")
    assert "fastq_r1: line 1 should start a record with '@'" in stderr
    assert "not a FASTQ file" in stderr
    stderr = await task_stderr(client, short["id"], "check_reads")
    assert "the mates differ: fastq_r1 has 5400 reads, fastq_r2 100" in stderr


async def task_stderr(client: httpx.AsyncClient, run_id: str, rule: str) -> str:
    tasks = (await client.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks")).json()["task_logs"]
    task = next(t for t in tasks if t["name"] == rule)
    return (await client.get(task["stderr"].replace("http://testserver", ""), follow_redirects=True)).text
