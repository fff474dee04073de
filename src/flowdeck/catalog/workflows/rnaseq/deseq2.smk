# rnaseq_deseq2 2.0.0, the request-level step: DESeq2 across a request's samples.
#
# flowdeck creates this run once every sample run of the request has completed
# (docs/adr/0019). Config: samples (sample, condition, quant: a sample's
# quant.tsv, attached to this run under samples/<sample>/quant.tsv) and
# padj_threshold. The sample sheet for R is written here, not in a shell.

import csv
from pathlib import Path

SAMPLES = list(config["samples"])
PADJ = float(config.get("padj_threshold", 0.05))
HERE = Path(workflow.basedir)

with open("samples.tsv", "w", newline="") as sheet:
    out = csv.writer(sheet, delimiter="\t", lineterminator="\n")
    out.writerow(["sample", "condition", "quant"])
    for sample in SAMPLES:
        quant = (HERE / str(sample["quant"])).resolve()
        if not quant.is_relative_to(HERE) or not quant.is_file():
            raise ValueError(f"sample {sample['sample']}: its quantification {sample['quant']} is missing")
        out.writerow([sample["sample"], sample["condition"], str(quant)])


rule all:
    input:
        "deseq2/deseq2_results.tsv",


rule deseq2:
    input:
        "samples.tsv",
    output:
        "deseq2/deseq2_results.tsv",
        "deseq2/deseq2_significant.tsv",
        "deseq2/normalized_counts.tsv",
        "deseq2/pca.png",
        "deseq2/ma.png",
    log:
        "logs/deseq2.log",
    params:
        script=str(HERE / "deseq2.R"),
        padj=PADJ,
    shell:
        "Rscript {params.script:q} samples.tsv deseq2 {params.padj} > {log} 2>&1"
