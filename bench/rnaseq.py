"""A sample-sheet RNA-seq request through flowdeck against the same per-sample runs done directly.

    .venv/bin/python bench/rnaseq.py                 # 24 samples (12 per condition)
    .venv/bin/python bench/rnaseq.py --samples 6     # a quick look

Data: tests/support/synth_rna.py's synthetic transcriptome (40 transcripts, 8 planted 4-fold
changes) registered as ``gencode_v38`` and indexed once (``flowdeck references index``), and
4,000 single-end reads per sample. flowdeck is ``flowdeck up`` (temp SQLite, the snakemake
backend, default settings: sandbox on, local-run limit = the core count) driven over HTTP:
``POST /requests`` with a sample sheet (sample_id, fastq_files, condition), timed until the
request's aggregate state is COMPLETE, i.e. every sample run and the DESeq2 step have ended.
Direct: ``snakemake --cores 1`` on each sample's Snakefile and config (copied from flowdeck's
runs), one after the other, no sandbox; their sum divided by the local-run limit is what a
perfect scheduler with no overhead would take for the samples alone (no DESeq2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from tests.support import synth_rna

ACTIVE = {"QUEUED", "INITIALIZING", "RUNNING", "CANCELING"}


def make_data(folder: Path, per_condition: int) -> list[synth_rna.Sample]:
    """The registered, indexed transcriptome and the samples' reads."""
    truth = synth_rna.make_transcriptome()
    refs = folder / "refs"
    refs.mkdir()
    truth.write_fasta(refs / "transcripts.fa")
    (refs / "gencode_v38.yaml").write_text("name: gencode_v38\nkind: transcriptome\nfasta: transcripts.fa\n")
    env = {**os.environ, "FLOWDECK_REFERENCES_DIR": str(refs)}
    index = [str(common.BIN / "flowdeck"), "references", "index", "gencode_v38"]
    subprocess.run(index, env=env, stdout=sys.stderr, check=True)
    samples = synth_rna.simulate_experiment(truth, folder / "reads", per_condition=per_condition)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the sandboxed runs read them as another user
    return samples


def through_flowdeck(url: str, samples: list[synth_rna.Sample]) -> tuple[str, float, float]:
    """The request's id, seconds to aggregate COMPLETE, and seconds until its DESeq2 step was created
    (the last sample had completed)."""
    rows = [f"{s.name},{s.fastq.as_uri()},{s.condition}" for s in samples]
    sheet = "\n".join(["sample_id,fastq_files,condition", *rows]) + "\n"
    body = {"pipeline_name": "rnaseq_deseq2", "parameters": {"reference": "gencode_v38"}, "samplesheet": sheet}
    started, wall = time.monotonic(), time.time()
    answer = httpx.post(f"{url}/requests", json=body, timeout=30)
    answer.raise_for_status()
    request_id = str(answer.json()["request_id"])
    deadline = started + 3600
    while time.monotonic() < deadline:
        detail = httpx.get(f"{url}/requests/{request_id}", timeout=10).json()
        if detail["aggregate"]["state"] not in ACTIVE:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    if detail["aggregate"]["state"] != "COMPLETE":
        raise RuntimeError(f"request {request_id} ended {detail['aggregate']}")
    step = next(run for run in detail["runs"] if run["sample_id"] is None)
    samples_done = datetime.fromisoformat(step["created_at"]).timestamp() - wall
    return request_id, elapsed, samples_done


def direct(url: str, request_id: str, data_dir: Path, work: Path) -> list[float]:
    """Each sample's run again, directly: its own Snakefile and config, one after the other."""
    runs = httpx.get(f"{url}/requests/{request_id}", params={"page_size": 1000}, timeout=10).json()["runs"]
    times: list[float] = []
    for run in runs:
        if run["sample_id"] is None:  # the DESeq2 step
            continue
        source = data_dir.resolve() / "runs" / run["run_id"]
        folder = work / f"direct-{run['sample_id']}"
        folder.mkdir()
        argv = [str(common.BIN / "snakemake"), "--snakefile", str(source / "attachments" / "Snakefile")]
        argv += ["--directory", str(folder), "--configfile", str(source / "work" / ".flowdeck" / "config.json")]
        started = time.monotonic()
        subprocess.run([*argv, "--cores", "1", "--nocolor", "--quiet"], capture_output=True, check=True)
        times.append(time.monotonic() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=24, help="samples in the request (even; half per condition)")
    args = parser.parse_args()
    limit = max(1, os.cpu_count() or 1)
    load_before = common.load_average()
    work = Path(tempfile.mkdtemp(prefix="flowdeck-bench-rna-"))
    try:
        samples = make_data(work, args.samples // 2)
        env = {
            "FLOWDECK_REFERENCES_DIR": str(work / "refs"),
            "FLOWDECK_SANDBOX_READ_ONLY_PATHS": f'["{work}"]',
            "FLOWDECK_DATASET_FILE_ROOTS": f'["{work}"]',
        }
        data_dir = work / "data"
        with common.flowdeck_up(data_dir, backends="snakemake", extra_env=env) as server:
            request_id, ours, samples_done = through_flowdeck(server.url, samples)
            bare = direct(server.url, request_id, data_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ideal = sum(bare) / limit
    command = " ".join([".venv/bin/python", "bench/rnaseq.py", *sys.argv[1:]])
    print(
        "\n".join(
            [
                f"## RNA-seq request: {len(samples)} samples and DESeq2 through flowdeck, against direct runs",
                "",
                f"Command: `{command}`; load average {load_before} before, {common.load_average()} after; "
                f"{os.cpu_count()} cores shared; local-run limit {limit}.",
                "",
                "| | seconds |",
                "|---|---|",
                f"| flowdeck: POST /requests → aggregate COMPLETE (samples + DESeq2, sandboxed) | {ours:.1f} |",
                f"| flowdeck: POST /requests → DESeq2 step created (every sample completed) | {samples_done:.1f} |",
                f"| sum of the {len(bare)} direct per-sample runs (snakemake --cores 1) | {sum(bare):.1f} |",
                f"| that sum / local-run limit {limit} (samples only, no overhead) | {ideal:.1f} |",
                f"| **ratio** flowdeck samples / ideal | **{samples_done / ideal:.2f}** |",
                "",
            ]
        )
    )


if __name__ == "__main__":
    main()
