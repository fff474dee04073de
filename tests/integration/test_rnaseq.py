"""rnaseq_deseq2 2.0.0 for real, checked against the truth of a synthetic experiment.

The data (tests/support/synth_rna.py): 40 transcripts, 8 planted as 4-fold up or
down in condition B, 3 samples of each condition, 4,000 single-end reads each.
It lives in a world-readable folder of its own, given to the runs' sandboxes as a
read-only path (as an operator gives a references folder).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flowdeck.backends.registry import Registry, load_class
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines import references
from flowdeck.worker.loop import Worker
from tests.integration.test_jobs_api import RNASEQ
from tests.support.network import moto_s3
from tests.support.synth_rna import Sample, Transcriptome, make_transcriptome, simulate_experiment

TOOLS = ("cutadapt", "salmon", "kallisto")
TERMINAL = {"completed", "failed", "canceled"}

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not load_class("snakemake").available(), reason="snakemake is not installed"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="cutadapt/salmon/kallisto missing"),
]


@dataclass(frozen=True)
class Experiment:
    folder: Path
    transcriptome: Transcriptome
    samples: list[Sample]

    @property
    def references_dir(self) -> Path:
        return self.folder / "refs"


@pytest.fixture(scope="module")
def experiment() -> Iterator[Experiment]:
    """The synthetic experiment and its salmon and kallisto indexes, built once."""
    folder = Path(tempfile.mkdtemp(prefix="flowdeck-rnaseq-"))
    try:
        truth = make_transcriptome()
        (folder / "refs").mkdir()
        truth.write_fasta(folder / "refs" / "transcripts.fa")
        # A test registry: seed 002's gencode_v38 stands for the synthetic transcriptome here.
        entry = folder / "refs" / "gencode_v38.yaml"
        entry.write_text("name: gencode_v38\nkind: transcriptome\nfasta: transcripts.fa\n")
        references.build_indexes(references.parse_reference(entry))
        samples = simulate_experiment(truth, folder / "reads")
        (folder / "reads" / "broken.fastq").write_text("this is not FASTQ\n")
        _world_readable(folder)
        yield Experiment(folder, truth, samples)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _world_readable(folder: Path) -> None:
    """The sandbox runs as an unprivileged user: it must be able to read the data."""
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)


@pytest.fixture
def rna_services(services: AppContext, experiment: Experiment) -> AppContext:
    services.settings.backends = ["demo", "snakemake"]
    services.settings.sandbox_read_only_paths = [experiment.folder]
    services.settings.references_dir = experiment.references_dir
    services.settings.dataset_file_roots = [experiment.folder]  # file:// inputs (input staging)
    services.backends = Registry(services.settings)
    return services


def sample_parameters(experiment: Experiment, sample: Sample, **extra: object) -> dict[str, object]:
    return {
        "sample_id": sample.name,
        "reference": "gencode_v38",
        "fastq_files": [f"file://{sample.fastq}"],
        **extra,
    }


async def follow_job(api: httpx.AsyncClient, worker: Worker, job_id: str, seconds: float = 120) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await worker.iterate()
        job: dict[str, object] = (await api.get(f"/jobs/{job_id}")).json()
        if job["state"] in TERMINAL:
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


async def served_output(api: httpx.AsyncClient, run_id: str, name: str) -> str:
    listing = (await api.get(f"/ga4gh/wes/v1/runs/{run_id}/outputs")).json()
    found = next(f for f in listing["files"] if f["name"] == name)
    # The link answers 307 to the file in storage (docs/storage.md).
    return (await api.get(found["url"].replace("http://testserver", ""), follow_redirects=True)).text


def quant_table(text: str) -> dict[str, tuple[float, float]]:
    """Name → (TPM, NumReads) from a quant.tsv."""
    rows = [line.split("\t") for line in text.splitlines()[1:] if line]
    return {row[0]: (float(row[2]), float(row[3])) for row in rows}


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return float(cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5)


# The tools' side runs on one database; the request step's SQL (test below) runs on all three.
ONE_DATABASE = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)


@ONE_DATABASE
@pytest.mark.parametrize("method", ["salmon", "kallisto"])
async def test_one_sample_tpm_follows_the_truth(
    api: httpx.AsyncClient, rna_services: AppContext, experiment: Experiment, method: str
) -> None:
    sample = experiment.samples[0]
    body = {
        "pipeline_name": "rnaseq_deseq2",
        "parameters": sample_parameters(experiment, sample, quantification_method=method),
        "research_group": "systems_biology_lab",
    }
    response = await api.post("/jobs", json=body)
    assert response.status_code in (200, 201, 202), response.text
    job = await follow_job(api, Worker(rna_services), str(response.json()["id"]))
    assert job["state"] == "completed", (job["error_message"], job.get("tasks"))
    assert job["pipeline_version"] == "2.0.0"
    table = quant_table(await served_output(api, str(job["id"]), "quant.tsv"))
    names = sorted(sample.tpm)
    assert set(table) == set(names)
    assert spearman([sample.tpm[n] for n in names], [table[n][0] for n in names]) >= 0.9
    report = await served_output(api, str(job["id"]), "trimmed/report.txt")
    assert "Reads with adapters" in report


@ONE_DATABASE
async def test_a_fastq_that_is_not_fastq_fails_with_the_reason_in_the_task_stderr(
    api: httpx.AsyncClient, rna_services: AppContext, experiment: Experiment
) -> None:
    broken = Sample("broken", "A", experiment.folder / "reads" / "broken.fastq", {})
    body = {"pipeline_name": "rnaseq_deseq2", "parameters": sample_parameters(experiment, broken)}
    response = await api.post("/jobs", json=body)
    assert response.status_code in (200, 201, 202), response.text
    run_id = str(response.json()["id"])
    job = await follow_job(api, Worker(rna_services), run_id)
    assert job["state"] == "failed", job
    tasks = (await api.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks")).json()["task_logs"]
    trim = next(t for t in tasks if t["name"] == "trim")
    assert trim["exit_code"] == 1
    stderr = (await api.get(trim["stderr"].replace("http://testserver", ""), follow_redirects=True)).text
    assert "Error in FASTQ file" in stderr


def sheet(experiment: Experiment, samples: list[Sample], conditions: list[str]) -> str:
    rows = [f"{s.name},file://{s.fastq},{c}" for s, c in zip(samples, conditions, strict=True)]
    return "\n".join(["sample_id,fastq_files,condition", *rows]) + "\n"


def request_body(experiment: Experiment, samplesheet: str) -> dict[str, object]:
    common = {"reference": "gencode_v38"}
    return {"pipeline_name": "rnaseq_deseq2", "parameters": common, "samplesheet": samplesheet}


async def follow_request(api: httpx.AsyncClient, worker: Worker, request_id: str, seconds: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await worker.iterate()
        detail: dict[str, object] = (await api.get(f"/requests/{request_id}")).json()
        aggregate = detail["aggregate"]
        assert isinstance(aggregate, dict)
        if aggregate["state"] not in ("QUEUED", "INITIALIZING", "RUNNING", "CANCELING"):
            return detail
        await asyncio.sleep(0.3)
    raise AssertionError(f"request {request_id} did not end")


async def test_a_three_against_three_request_finds_the_planted_genes_with_deseq2(
    api: httpx.AsyncClient, rna_services: AppContext, experiment: Experiment
) -> None:
    samplesheet = sheet(experiment, experiment.samples, [s.condition for s in experiment.samples])
    response = await api.post("/requests", json=request_body(experiment, samplesheet))
    assert response.status_code == 202, response.text
    request_id = str(response.json()["request_id"])
    detail = await follow_request(api, Worker(rna_services), request_id, 300)
    assert detail["aggregate"] == {"state": "COMPLETE", "runs_created": 7, "counts": {"COMPLETE": 7}}  # type: ignore[comparison-overlap]
    assert detail["step_state"] == "created"
    assert detail["total_runs"] == 6
    runs = detail["runs"]
    assert isinstance(runs, list)
    step = runs[-1]
    assert step["request_index"] == 6
    assert step["sample_id"] is None
    job = (await api.get(f"/jobs/{step['run_id']}")).json()
    assert (job["pipeline_name"], job["state"], job["origin"]) == ("rnaseq_deseq2", "completed", "requests")
    tags = (await api.get(f"/ga4gh/wes/v1/runs/{step['run_id']}")).json()["request"]["tags"]
    assert tags["request_step"] == "deseq2"
    assert tags["request_id"] == request_id
    significant = await served_output(api, step["run_id"], "deseq2/deseq2_significant.tsv")
    found = {line.split("\t")[0] for line in significant.splitlines()[1:] if line}
    assert experiment.transcriptome.de <= found
    assert len(found - experiment.transcriptome.de) <= 1
    listing = (await api.get(f"/ga4gh/wes/v1/runs/{step['run_id']}/outputs")).json()
    assert {"deseq2/pca.png", "deseq2/ma.png", "deseq2/deseq2_results.tsv"} <= {f["name"] for f in listing["files"]}


@pytest.mark.parametrize(
    ("conditions", "pointer", "words"),
    [
        (["A", "A", "B"], "/rows", "at least 2 samples per condition; 'B' has 1"),
        (["A", "A", "A"], "/rows", "every sample has condition 'A'"),
        (["A", "", "B"], "/rows/1/condition", "condition is missing while other samples give one"),
    ],
)
async def test_conditions_that_cannot_be_compared_are_refused_at_submit(
    api: httpx.AsyncClient,
    rna_services: AppContext,
    experiment: Experiment,
    conditions: list[str],
    pointer: str,
    words: str,
) -> None:
    samplesheet = sheet(experiment, experiment.samples[:3], conditions)
    response = await api.post("/requests", json=request_body(experiment, samplesheet))
    assert response.status_code == 422, response.text
    problems = response.json()["errors"]
    assert [(p["pointer"], p["rule"]) for p in problems][:1] == [(pointer, "requestStep")]
    assert words in problems[0]["message"]
    assert (await api.get("/requests")).json()["requests"] == []


async def test_a_transcriptome_that_is_not_registered_is_refused_at_submit(
    api: httpx.AsyncClient, rna_services: AppContext, experiment: Experiment
) -> None:
    body = {"pipeline_name": "rnaseq_deseq2", "parameters": sample_parameters(experiment, experiment.samples[0])}
    body["parameters"] |= {"reference": "gencode_v45"}  # type: ignore[operator]
    response = await api.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()["errors"][0]
    assert (problem["pointer"], problem["rule"]) == ("/reference", "reference")
    assert "gencode_v38" in problem["message"]


@ONE_DATABASE
async def test_seed_002_rnaseq_body_verbatim_runs_for_real_from_s3(
    api: httpx.AsyncClient, rna_services: AppContext, experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 002's RNA-seq example exactly as written: its s3://data/RNA_001.fastq.gz is the first
    synthetic sample (gzipped FASTQ) in moto's S3; its gencode_v38 is the test registry's transcriptome."""
    sample = experiment.samples[0]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with moto_s3() as url:
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        client.create_bucket(Bucket="data")
        client.put_object(Bucket="data", Key="RNA_001.fastq.gz", Body=sample.fastq.read_bytes())
        rna_services.settings.s3_endpoint_url = url
        rna_services.settings.staging_s3_prefixes = {"systems_biology_lab": ["s3://data/"]}
        response = await api.post("/jobs", json=RNASEQ)
        assert response.status_code in (200, 201, 202), response.text
        job = await follow_job(api, Worker(rna_services), str(response.json()["id"]))
    assert job["state"] == "completed", job["error_message"]
    assert job["pipeline_version"] == "2.0.0"
    assert job["parameters"]["fastq_files"] == ["s3://data/RNA_001.fastq.gz"]  # the run keeps what was asked
    table = quant_table(await served_output(api, str(job["id"]), "quant.tsv"))
    names = sorted(sample.tpm)
    assert spearman([sample.tpm[n] for n in names], [table[n][0] for n in names]) >= 0.9
