"""Parameter validation: seed 002's bodies, every validator's message, strict vs relaxed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowdeck.errors import Problem, ValidationFailed
from flowdeck.services.pipelines.catalog import Catalog, Pipeline
from flowdeck.services.pipelines.parameters import MAX_DEPTH, ParameterModel

# Seed 002's example bodies, as written there.
SEED_GATK = """
{
  "pipeline_name": "gatk_variant_calling",
  "parameters": {
    "sample_id": "WGS_001",
    "reference_genome": "hg38",
    "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz",
    "fastq_r2": "s3://input-data/WGS_001_R2.fastq.gz",
    "caller": "HaplotypeCaller",
    "quality_threshold": 30,
    "depth_threshold": 10
  },
  "research_group": "cancer_genomics_lab",
  "description": "Variant calling for tumor sample WGS_001"
}
"""
SEED_RNASEQ = """
{
  "pipeline_name": "rnaseq_deseq2",
  "parameters": {
    "sample_id": "RNA_001",
    "reference": "gencode_v38",
    "fastq_files": ["s3://data/RNA_001.fastq.gz"],
    "adapter_sequence": "AGATCGGAAGAGC",
    "min_quality": 20,
    "quantification_method": "salmon"
  },
  "research_group": "systems_biology_lab",
  "description": "RNA-seq analysis for sample RNA_001"
}
"""
GATK: dict[str, Any] = json.loads(SEED_GATK)["parameters"]
RNASEQ: dict[str, Any] = json.loads(SEED_RNASEQ)["parameters"]
FASTQ_URI = "must be an s3://, https:// or file:// URI of a FASTQ file (.fastq, .fq, .fastq.gz or .fq.gz)"
MATE = "the same URI with the read number 1 changed to 2 (for example _R1 to _R2)"
GATK_KNOWN = (
    "sample_id, reference_genome, fastq_r1, fastq_r2, caller, quality_threshold, depth_threshold, "
    "intervals, interval_padding, panel_of_normals"
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def problems_of(pipeline: Pipeline, params: Any, strict: bool = True) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        pipeline.validate(params, strict=strict)
    return [(p.pointer, p.message, p.rule) for p in caught.value.problems]


def test_seed_gatk_body_is_valid_as_written(catalog: Catalog) -> None:
    pipeline = catalog.get(json.loads(SEED_GATK)["pipeline_name"])
    assert pipeline.validate(GATK) == GATK


def test_seed_rnaseq_body_is_valid_with_defaults_applied(catalog: Catalog) -> None:
    pipeline = catalog.get(json.loads(SEED_RNASEQ)["pipeline_name"])
    assert pipeline.validate(RNASEQ) == RNASEQ | {"strandedness": "auto", "padj_threshold": 0.05}


def test_defaults_fill_what_is_missing(catalog: Catalog) -> None:
    minimal = {k: GATK[k] for k in ("sample_id", "reference_genome", "fastq_r1")}
    resolved = catalog.get("gatk_variant_calling", "1.0.0").validate(minimal)
    assert resolved == minimal | {"caller": "HaplotypeCaller", "quality_threshold": 30, "depth_threshold": 10}


def test_validate_never_changes_its_input(catalog: Catalog) -> None:
    params = {**RNASEQ, "fastq_files": list(RNASEQ["fastq_files"])}
    resolved = catalog.get("rnaseq_deseq2").validate(params, strict=False)
    resolved["fastq_files"].append("x")
    assert params == RNASEQ


@pytest.mark.parametrize("name", ["hello_cwl", "hello_snakemake", "hello_wdl"])
def test_hello_pipelines_run_on_defaults(catalog: Catalog, name: str) -> None:
    assert catalog.get(name).validate({}) == catalog.get(name).model.defaults


GATK_FAILURES = [
    (
        {"reference_genome": "hg99"},
        "/reference_genome",
        "reference_genome must be one of hg19, hg38, GRCh37, GRCh38, T2T-CHM13, mm10, mm39 (got 'hg99')",
        "enum",
    ),
    (
        {"fastq_r1": "ftp://x/WGS_001_R1.fastq.gz"},
        "/fastq_r1",
        f"fastq_r1 {FASTQ_URI} (got 'ftp://x/WGS_001_R1.fastq.gz')",
        "pattern",
    ),
    (
        {"fastq_r1": "s3://input-data/WGS_001_R1.bam"},
        "/fastq_r1",
        f"fastq_r1 {FASTQ_URI} (got 's3://input-data/WGS_001_R1.bam')",
        "pattern",
    ),
    (
        {"fastq_r2": "s3://input-data/WGS_001_R1.fastq.gz"},
        "/fastq_r2",
        "fastq_r2 is the same file as fastq_r1",
        "paired_end",
    ),
    (
        {"fastq_r2": "s3://input-data/WGS_002_R2.fastq.gz"},
        "/fastq_r2",
        f"fastq_r2 must name the read-2 mate of fastq_r1: {MATE}",
        "paired_end",
    ),
    ({"caller": "FreeBayes"}, "/caller", "caller must be one of HaplotypeCaller, Mutect2 (got 'FreeBayes')", "enum"),
    ({"quality_threshold": 101}, "/quality_threshold", "quality_threshold must be at most 100 (got 101)", "maximum"),
    ({"quality_threshold": -1}, "/quality_threshold", "quality_threshold must be at least 0 (got -1)", "minimum"),
    ({"quality_threshold": 30.5}, "/quality_threshold", "quality_threshold must be an integer (got 30.5)", "type"),
    ({"quality_threshold": True}, "/quality_threshold", "quality_threshold must be an integer (got true)", "type"),
    ({"depth_threshold": 0}, "/depth_threshold", "depth_threshold must be at least 1 (got 0)", "minimum"),
    (
        {"sample_id": "WGS 001"},
        "/sample_id",
        "sample_id must start with a letter or digit and use only letters, digits, _ . - (at most 64 characters) "
        "(got 'WGS 001')",
        "pattern",
    ),
    (
        {"interval_padding": 100},
        "/intervals",
        "intervals is required when interval_padding is given",
        "padding_needs_intervals",
    ),
    (
        {"panel_of_normals": "s3://b/pon.vcf.gz"},
        "/panel_of_normals",
        "panel_of_normals is only allowed when caller is Mutect2",
        "panel_of_normals_needs_mutect2",
    ),
    (
        {"intervals": "s3://b/exome.txt"},
        "/intervals",
        "intervals must be an s3://, https:// or file:// URI of a BED file (.bed or .bed.gz) (got 's3://b/exome.txt')",
        "pattern",
    ),
    ({"colour": "blue"}, "/colour", f"colour is not a known parameter (known: {GATK_KNOWN})", "additionalProperties"),
]


@pytest.mark.parametrize(("patch", "pointer", "message", "rule"), GATK_FAILURES)
def test_gatk_validator_messages(
    catalog: Catalog, patch: dict[str, Any], pointer: str, message: str, rule: str
) -> None:
    assert problems_of(catalog.get("gatk_variant_calling", "1.0.0"), GATK | patch) == [(pointer, message, rule)]


def test_gatk_valid_combinations(catalog: Catalog) -> None:
    pipeline = catalog.get("gatk_variant_calling", "1.0.0")
    single_end = {k: v for k, v in GATK.items() if k != "fastq_r2"}
    exome = GATK | {"intervals": "https://h/exome.bed.gz", "interval_padding": 100}
    somatic = GATK | {"caller": "Mutect2", "panel_of_normals": "file:///refs/pon.vcf.gz"}
    for params in (single_end, exome, somatic):
        assert pipeline.validate(params)["sample_id"] == "WGS_001"


def test_r2_without_r1(catalog: Catalog) -> None:
    params = {k: v for k, v in GATK.items() if k != "fastq_r1"}
    assert problems_of(catalog.get("gatk_variant_calling", "1.0.0"), params) == [
        ("/fastq_r1", "fastq_r1 is required", "required"),
        ("/fastq_r2", "fastq_r2 is given without its read-1 mate fastq_r1", "paired_end"),
    ]


RNASEQ_FAILURES = [
    (
        {"reference": "hg38"},
        "/reference",
        "reference must be one of gencode_v19, gencode_v38, gencode_v39, gencode_v40, gencode_v41, gencode_v42, "
        "gencode_v43, gencode_v44, gencode_v45, gencode_vM25, gencode_vM32, gencode_vM33, gencode_vM34 (got 'hg38')",
        "enum",
    ),
    ({"fastq_files": []}, "/fastq_files", "fastq_files must have at least 1 item (got 0)", "minItems"),
    (
        {"fastq_files": ["s3://a/x_R1.fq", "s3://a/x_R2.fq", "s3://a/y.fq"]},
        "/fastq_files",
        "fastq_files must have at most 2 items (got 3)",
        "maxItems",
    ),
    (
        {"fastq_files": ["s3://a/x_R1.fq", "s3://a/x_R1.fq"]},
        "/fastq_files",
        "fastq_files must not repeat an item",
        "uniqueItems",
    ),
    (
        {"fastq_files": ["s3://a/x_R1.fq", "s3://a/y_R2.fq"]},
        "/fastq_files/1",
        f"fastq_files[1] must name the read-2 mate of fastq_files[0]: {MATE}",
        "paired_end",
    ),
    (
        {"fastq_files": ["s3://data/RNA_001.fastq.gz", "http://x/y.fq"]},
        "/fastq_files/1",
        f"fastq_files[1] {FASTQ_URI} (got 'http://x/y.fq')",
        "pattern",
    ),
    (
        {"fastq_files": "s3://data/RNA_001.fastq.gz"},
        "/fastq_files",
        "fastq_files must be an array (got 's3://data/RNA_001.fastq.gz')",
        "type",
    ),
    (
        {"adapter_sequence": "AGATCGGAAGAGX"},
        "/adapter_sequence",
        "adapter_sequence must use only the letters A, C, G, T and N (got 'AGATCGGAAGAGX')",
        "pattern",
    ),
    (
        {"adapter_sequence": "agatcggaagagc"},
        "/adapter_sequence",
        "adapter_sequence must use only the letters A, C, G, T and N (got 'agatcggaagagc')",
        "pattern",
    ),
    (
        {"adapter_sequence": "AGAT"},
        "/adapter_sequence",
        "adapter_sequence must be at least 6 characters long (got 'AGAT')",
        "minLength",
    ),
    ({"min_quality": 61}, "/min_quality", "min_quality must be at most 60 (got 61)", "maximum"),
    (
        {"quantification_method": "cufflinks"},
        "/quantification_method",
        "quantification_method must be one of salmon, kallisto, featureCounts, htseq-count, RSEM (got 'cufflinks')",
        "enum",
    ),
    ({"padj_threshold": 0}, "/padj_threshold", "padj_threshold must be greater than 0 (got 0)", "exclusiveMinimum"),
    ({"padj_threshold": 1.5}, "/padj_threshold", "padj_threshold must be at most 1 (got 1.5)", "maximum"),
]


@pytest.mark.parametrize(("patch", "pointer", "message", "rule"), RNASEQ_FAILURES)
def test_rnaseq_validator_messages(
    catalog: Catalog, patch: dict[str, Any], pointer: str, message: str, rule: str
) -> None:
    assert problems_of(catalog.get("rnaseq_deseq2", "1.0.0"), RNASEQ | patch) == [(pointer, message, rule)]


def test_paired_end_rnaseq(catalog: Catalog) -> None:
    files = ["s3://data/RNA_001_R1.fastq.gz", "s3://data/RNA_001_R2.fastq.gz"]
    assert catalog.get("rnaseq_deseq2").validate(RNASEQ | {"fastq_files": files})["fastq_files"] == files


def test_every_problem_is_reported_at_once(catalog: Catalog) -> None:
    params = {"sample_id": "bad id", "reference_genome": "hg99", "caller": 3, "extra": None}
    failure = problems_of(catalog.get("gatk_variant_calling", "1.0.0"), params)
    assert [(pointer, rule) for pointer, _, rule in failure] == [
        ("/caller", "type"),
        ("/extra", "additionalProperties"),
        ("/fastq_r1", "required"),
        ("/reference_genome", "enum"),
        ("/sample_id", "pattern"),
    ]


def test_failure_detail_summarises(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as caught:
        catalog.get("gatk_variant_calling", "1.0.0").validate(GATK | {"caller": "x", "depth_threshold": 0})
    assert caught.value.status_code == 422
    assert caught.value.detail == (
        "invalid parameters for gatk_variant_calling 1.0.0 (2 problems): "
        "/caller: caller must be one of HaplotypeCaller, Mutect2 (got 'x'); "
        "/depth_threshold: depth_threshold must be at least 1 (got 0)"
    )


def test_prefix_is_prepended_to_pointers(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as caught:
        catalog.get("gatk_variant_calling", "1.0.0").validate(GATK | {"caller": "x"}, prefix="/parameters")
    assert caught.value.problems[0].pointer == "/parameters/caller"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "parameters must be an object (got an array)"),
        ("x", "parameters must be an object (got 'x')"),
        (None, "parameters must be an object (got null)"),
    ],
)
def test_parameters_must_be_an_object(catalog: Catalog, params: Any, message: str) -> None:
    assert problems_of(catalog.get("hello_cwl"), params) == [("", message, "type")]


def test_null_parameters_are_empty_when_relaxed(catalog: Catalog) -> None:
    assert catalog.get("hello_wdl").validate(None, strict=False) == {"message": "Hello from flowdeck", "times": 3}


def test_deep_nesting_is_one_problem(catalog: Catalog) -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    message = f"parameters are nested deeper than {MAX_DEPTH} levels"
    assert problems_of(catalog.get("hello_cwl"), {"lines": deep}) == [("", message, "maxDepth")]


def test_non_finite_numbers(catalog: Catalog) -> None:
    assert problems_of(catalog.get("rnaseq_deseq2"), RNASEQ | {"padj_threshold": float("nan")}) == [
        ("/padj_threshold", "padj_threshold must be a finite number", "finite"),
    ]


def test_keys_must_be_strings(catalog: Catalog) -> None:
    assert problems_of(catalog.get("hello_cwl"), {1: "x"}, strict=False) == [
        ("", "parameters has a key that is not a string", "type"),
    ]


def test_pointer_escapes_keys(catalog: Catalog) -> None:
    [(pointer, _, rule)] = problems_of(catalog.get("hello_cwl"), {"a/b~c": 1})
    assert (pointer, rule) == ("/a~1b~0c", "additionalProperties")


def test_long_values_are_shortened_in_messages(catalog: Catalog) -> None:
    [(_, message, _)] = problems_of(catalog.get("gatk_variant_calling", "1.0.0"), GATK | {"caller": "x" * 10_000})
    assert len(message) < 200


# --- strict vs relaxed on the same payload

SLOPPY: dict[str, Any] = {
    "Sample ID": " WGS_001 ",
    "reference_genome": "hg38",
    "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz ",
    "fastq_r2": "",
    "caller": None,
    "quality_threshold": "30",
    "depth_threshold": "12.0",
}


def test_strict_rejects_the_sloppy_payload(catalog: Catalog) -> None:
    assert problems_of(catalog.get("gatk_variant_calling", "1.0.0"), SLOPPY) == [
        ("/Sample ID", f"Sample ID is not a known parameter (known: {GATK_KNOWN})", "additionalProperties"),
        ("/caller", "caller must be a string (got null)", "type"),
        ("/depth_threshold", "depth_threshold must be an integer (got '12.0')", "type"),
        ("/fastq_r1", f"fastq_r1 {FASTQ_URI} (got 's3://input-data/WGS_001_R1.fastq.gz ')", "pattern"),
        ("/fastq_r2", f"fastq_r2 {FASTQ_URI} (got '')", "pattern"),
        ("/quality_threshold", "quality_threshold must be an integer (got '30')", "type"),
        ("/sample_id", "sample_id is required", "required"),
    ]


def test_relaxed_accepts_the_sloppy_payload(catalog: Catalog) -> None:
    assert catalog.get("gatk_variant_calling", "1.0.0").validate(SLOPPY, strict=False) == {
        "sample_id": "WGS_001",
        "reference_genome": "hg38",
        "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz",
        "caller": "HaplotypeCaller",
        "quality_threshold": 30,
        "depth_threshold": 12,
    }


def test_relaxed_still_rejects_what_no_relaxation_fixes(catalog: Catalog) -> None:
    params = SLOPPY | {"quality_threshold": "thirty", "colour": "blue", "reference_genome": ""}
    assert problems_of(catalog.get("gatk_variant_calling", "1.0.0"), params, strict=False) == [
        ("/colour", f"colour is not a known parameter (known: {GATK_KNOWN})", "additionalProperties"),
        ("/quality_threshold", "quality_threshold must be an integer (got 'thirty')", "type"),
        ("/reference_genome", "reference_genome is required", "required"),
    ]


def test_relaxed_single_value_becomes_a_list(catalog: Catalog) -> None:
    params = RNASEQ | {"fastq_files": " s3://data/RNA_001.fastq.gz ", "min_quality": "+25", "padj_threshold": "1e-2"}
    resolved = catalog.get("rnaseq_deseq2").validate(params, strict=False)
    assert resolved["fastq_files"] == ["s3://data/RNA_001.fastq.gz"]
    assert resolved["min_quality"] == 25
    assert resolved["padj_threshold"] == 0.01


def test_relaxed_key_given_twice_is_not_merged(catalog: Catalog) -> None:
    params = GATK | {"Caller": "Mutect2"}
    [(pointer, _, rule)] = problems_of(catalog.get("gatk_variant_calling", "1.0.0"), params, strict=False)
    assert (pointer, rule) == ("/Caller", "additionalProperties")


def custom_model() -> ParameterModel:
    schema = {
        "type": "object",
        "properties": {
            "flag": {"type": "boolean"},
            "ratio": {"type": "number"},
            "maybe": {"type": ["integer", "null"]},
            "choice": {"enum": ["a", "b"]},
            "sizes": {"type": "array", "items": {"type": "integer"}},
            "inner": {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False},
        },
    }
    rules = [{"name": "ordered", "check": "less_than", "lower": "ratio", "upper": "maybe"}]
    return ParameterModel.build(schema, rules, None, "custom 1.0.0")


def test_relaxed_booleans_numbers_nested_and_null() -> None:
    model = custom_model()
    params = {"flag": "TRUE", "ratio": "0.5", "maybe": None, "choice": " a ", "sizes": "3", "inner": {" N ": "4"}}
    assert model.validate(params, strict=False) == {
        "flag": True,
        "ratio": 0.5,
        "maybe": None,
        "choice": "a",
        "sizes": [3],
        "inner": {"n": 4},
    }


def test_nested_unknown_field_message() -> None:
    with pytest.raises(ValidationFailed) as caught:
        custom_model().validate({"inner": {"m": 1}})
    assert caught.value.problems == [
        Problem("/inner/m", "inner.m is not allowed here (known: n)", "additionalProperties"),
    ]


def test_less_than_rule() -> None:
    with pytest.raises(ValidationFailed) as caught:
        custom_model().validate({"ratio": 5, "maybe": 2})
    assert caught.value.problems == [Problem("/maybe", "maybe must be greater than ratio (5)", "ordered")]


def test_rule_message_override() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    rules = [{"name": "b_needs_a", "check": "requires", "if": "b", "then": "a", "message": "give a with b"}]
    model = ParameterModel.build(schema, rules, None, "x 1.0.0")
    with pytest.raises(ValidationFailed) as caught:
        model.validate({"b": "1"})
    assert caught.value.problems == [Problem("/a", "give a with b", "b_needs_a")]
