"""Variant calling through flowdeck against the same Snakefile run directly with Snakemake.

    .venv/bin/python bench/variant_calling.py            # 3 repetitions of each, medians reported
    .venv/bin/python bench/variant_calling.py --reps 1   # a quick look

Data: tests/support/synth.py's synthetic genome (36 kb, planted SNPs and indels), registered as a
reference and indexed once, and its 30x paired reads. flowdeck is ``flowdeck up`` (temp SQLite,
the snakemake backend, default settings: sandbox on) driven over HTTP: ``POST /jobs`` for
gatk_variant_calling 2.0.0 with bcftools. Its time is the server's COMPLETE event minus the moment
just before the POST. Direct: ``snakemake --cores 1`` on the run's own Snakefile and config
(copied from the first flowdeck run), in a fresh folder each time, no sandbox. Runs alternate.
"""

from __future__ import annotations

import argparse
import json
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
from tests.support import synth

TARGET_SHARE, TARGET_SECONDS = 0.05, 1.0
TERMINAL = {"completed", "failed", "canceled"}


def make_data(folder: Path) -> dict[str, str]:
    """The reference registry and reads; the job's parameters."""
    genome = synth.make_genome()
    refs = folder / "refs"
    refs.mkdir()
    synth.write_fasta(refs / "synth.fa", genome.contigs.items())
    (refs / "synth.yaml").write_text("name: synth\nkind: genome\nfasta: synth.fa\n")
    env = {**os.environ, "FLOWDECK_REFERENCES_DIR": str(refs)}
    index = [str(common.BIN / "flowdeck"), "references", "index", "synth"]
    subprocess.run(index, env=env, stdout=sys.stderr, check=True)
    r1, r2 = synth.write_sample(genome, folder)
    return {"sample_id": "S1", "reference_genome": "synth", "fastq_r1": r1.as_uri(), "fastq_r2": r2.as_uri()}


def through_flowdeck(url: str, parameters: dict[str, str]) -> tuple[str, float]:
    started = time.time()
    answer = httpx.post(
        f"{url}/jobs", json={"pipeline_name": "gatk_variant_calling", "parameters": parameters}, timeout=30
    )
    answer.raise_for_status()
    job_id = str(answer.json()["id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()["state"]
        if state in TERMINAL:
            break
        time.sleep(0.2)
    if state != "completed":
        raise RuntimeError(f"job {job_id} ended {state}")
    events = httpx.get(f"{url}/jobs/{job_id}/events", timeout=10).json()["events"]
    done = next(e["at"] for e in events if e.get("to_state") == "COMPLETE")
    return job_id, datetime.fromisoformat(done).timestamp() - started


def direct(snakefile: Path, config: Path, folder: Path) -> float:
    folder.mkdir(parents=True)
    argv = [str(common.BIN / "snakemake"), "--snakefile", str(snakefile), "--directory", str(folder)]
    argv += ["--configfile", str(config), "--cores", "1", "--nocolor", "--quiet"]
    started = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load_before = common.load_average()
    ours: list[float] = []
    bare: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="flowdeck-bench-vc-"))
    work.chmod(0o755)  # the sandboxed run reads the reads and the reference as another user
    try:
        parameters = make_data(work)
        env = {
            "FLOWDECK_REFERENCES_DIR": str(work / "refs"),
            "FLOWDECK_SANDBOX_READ_ONLY_PATHS": json.dumps([str(work)]),
            "FLOWDECK_DATASET_FILE_ROOTS": json.dumps([str(work)]),  # file:// inputs are staged from here
        }
        data_dir = work / "data"
        with common.flowdeck_up(data_dir, backends="snakemake", extra_env=env) as server:
            warm, _ = through_flowdeck(server.url, parameters)  # imports the backend; keeps the config
            run_dir = data_dir.resolve() / "runs" / warm
            snakefile, config = work / "Snakefile", work / "config.json"
            shutil.copy(run_dir / "attachments" / "Snakefile", snakefile)
            shutil.copy(run_dir / "work" / ".flowdeck" / "config.json", config)
            for rep in range(args.reps):
                ours.append(through_flowdeck(server.url, parameters)[1])
                bare.append(direct(snakefile, config, work / f"direct-{rep}"))
                print(f"repetition {rep + 1}: flowdeck {ours[-1]:.2f} s, direct {bare[-1]:.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(ours, bare, args, load_before)


def report(ours: list[float], bare: list[float], args: argparse.Namespace, load_before: str) -> None:
    flowdeck_s, direct_s = common.median(ours), common.median(bare)
    overhead = flowdeck_s - direct_s
    allowed = TARGET_SHARE * direct_s + TARGET_SECONDS
    command = " ".join([".venv/bin/python", "bench/variant_calling.py", *sys.argv[1:]])
    print(
        "\n".join(
            [
                "## Variant calling: flowdeck against Snakemake directly",
                "",
                f"Command: `{command}`; {args.reps} repetitions each, alternating, medians; load average "
                f"{load_before} before, {common.load_average()} after; {os.cpu_count()} cores shared.",
                "",
                "| | seconds (median) | all repetitions |",
                "|---|---|---|",
                f"| flowdeck: POST /jobs → COMPLETE event (sandboxed) | {flowdeck_s:.2f} | {_join(ours)} |",
                f"| snakemake directly, same Snakefile and config, --cores 1 | {direct_s:.2f} | {_join(bare)} |",
                f"| **overhead** (target ≤ 5 % + 1 s = {allowed:.2f}) | **{overhead:.2f}** "
                f"{'met' if overhead <= allowed else 'MISSED'} | |",
                "",
            ]
        )
    )


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
