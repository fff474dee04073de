"""Sample sheets: CSV/TSV rows mapped over one pipeline, with pointed errors."""

from __future__ import annotations

import pytest

from flowdeck.errors import InvalidInput, PayloadTooLarge, Problem, ValidationFailed
from flowdeck.services.pipelines.catalog import Catalog, Pipeline
from flowdeck.services.requests.samplesheet import MAX_PROBLEMS, parse_samplesheet
from flowdeck.settings import Settings

CATALOG = Catalog.load()
GATK = CATALOG.get("gatk_variant_calling", "1.0.0")
RNASEQ = CATALOG.get("rnaseq_deseq2")
FASTQ_URI = "must be an s3://, https:// or file:// URI of a FASTQ file (.fastq, .fq, .fastq.gz or .fq.gz)"


def gatk_sheet(count: int, sep: str = ",") -> str:
    lines = [sep.join(["sample_id", "reference_genome", "fastq_r1", "fastq_r2"])]
    lines += [sep.join([f"S{i}", "hg38", f"s3://b/S{i}_R1.fq.gz", f"s3://b/S{i}_R2.fq.gz"]) for i in range(count)]
    return "\n".join(lines) + "\n"


def failure(data: str | bytes, pipeline: Pipeline = GATK, **kwargs: object) -> list[Problem]:
    with pytest.raises(ValidationFailed) as caught:
        parse_samplesheet(data, pipeline, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_csv_rows_become_resolved_parameters() -> None:
    sheet = parse_samplesheet(gatk_sheet(3), GATK)
    assert sheet.format == "csv"
    assert sheet.columns == ("sample_id", "reference_genome", "fastq_r1", "fastq_r2")
    assert sheet.sample_ids == ["S0", "S1", "S2"]
    assert sheet.rows[1] == {
        "sample_id": "S1",
        "reference_genome": "hg38",
        "fastq_r1": "s3://b/S1_R1.fq.gz",
        "fastq_r2": "s3://b/S1_R2.fq.gz",
        "caller": "HaplotypeCaller",
        "quality_threshold": 30,
        "depth_threshold": 10,
    }


def test_tsv_is_sniffed_and_bytes_with_bom_are_read() -> None:
    sheet = parse_samplesheet(b"\xef\xbb\xbf" + gatk_sheet(2, "\t").encode(), GATK)
    assert (sheet.format, sheet.sample_ids) == ("tsv", ["S0", "S1"])


@pytest.mark.parametrize(("kind", "fmt"), [("csv", "csv"), ("text/csv; charset=utf-8", "csv"), ("TSV", "tsv")])
def test_declared_kind(kind: str, fmt: str) -> None:
    text = gatk_sheet(1, "\t" if fmt == "tsv" else ",")
    assert parse_samplesheet(text, GATK, kind=kind).format == fmt


def test_unknown_kind() -> None:
    with pytest.raises(InvalidInput, match="sample sheet type 'xlsx' is not csv or tsv"):
        parse_samplesheet(gatk_sheet(1), GATK, kind="xlsx")


def test_cells_are_read_as_relaxed_text_with_common_parameters() -> None:
    text = (
        "# sequencing run 42\nSample ID , FASTQ-R1, quality_threshold\n\nS1, s3://b/S1_R1.fq ,40\nS2,s3://b/S2_R1.fq,\n"
    )
    sheet = parse_samplesheet(text, GATK, common={"reference_genome": "GRCh38", "caller": "Mutect2"})
    assert [(r["sample_id"], r["fastq_r1"], r["quality_threshold"], r["caller"]) for r in sheet.rows] == [
        ("S1", "s3://b/S1_R1.fq", 40, "Mutect2"),
        ("S2", "s3://b/S2_R1.fq", 30, "Mutect2"),
    ]


def test_list_cells_are_split_on_semicolons() -> None:
    text = "sample_id,reference,fastq_files\nR1,gencode_v38,s3://d/R1_R1.fq.gz; s3://d/R1_R2.fq.gz\n"
    assert parse_samplesheet(text, RNASEQ).rows[0]["fastq_files"] == ["s3://d/R1_R1.fq.gz", "s3://d/R1_R2.fq.gz"]


def test_missing_and_unknown_columns() -> None:
    assert failure("sample_id,fastq_r2,notes,\nS1,s3://b/S1_R2.fq,x,\n") == [
        Problem(
            "/columns/2",
            "line 1: column 'notes' is not a parameter of gatk_variant_calling (parameters: sample_id, "
            "reference_genome, fastq_r1, fastq_r2, caller, quality_threshold, depth_threshold, intervals, "
            "interval_padding, panel_of_normals)",
            "additionalProperties",
        ),
        Problem("/columns/3", "line 1: column 4 has no name", "name"),
        Problem("/columns", "line 1: missing required column 'reference_genome'", "required"),
        Problem("/columns", "line 1: missing required column 'fastq_r1'", "required"),
        # The row is still checked with the columns that could be read.
        Problem("/rows/0/fastq_r2", "line 2: fastq_r2 is given without its read-1 mate fastq_r1", "paired_end"),
    ]


def test_duplicate_column_and_common_conflict() -> None:
    text = "sample_id,reference_genome,fastq_r1,Sample_ID\nS1,hg38,s3://b/S1_R1.fq,S1\n"
    assert failure(text, common={"reference_genome": "hg38"}) == [
        Problem("/columns/1", "line 1: column 'reference_genome' is also given as a common parameter", "conflict"),
        Problem("/columns/3", "line 1: column 'sample_id' appears twice", "uniqueItems"),
    ]


def test_duplicate_sample_ids() -> None:
    text = gatk_sheet(3) + "S1,hg38,s3://b/S1_R1.fq.gz,\n"
    assert failure(text) == [
        Problem("/rows/3/sample_id", "line 5: sample_id 'S1' is already used by /rows/1", "unique")
    ]


def test_row_problems_point_at_the_cell() -> None:
    rows = gatk_sheet(7).splitlines()
    rows.append("S7,hg38,ftp://b/S7_R1.fq,s3://b/S7_R2.fq")
    rows.append("S8,hg99,s3://b/S8_R1.fq,s3://b/S8_R2.fq,extra")
    assert failure("\n".join(rows)) == [
        Problem("/rows/7/fastq_r1", f"line 9: fastq_r1 {FASTQ_URI} (got 'ftp://b/S7_R1.fq')", "pattern"),
        Problem("/rows/8", "line 10: the row has 5 cells; the header has 4 columns", "columns"),
    ]


def test_a_bad_column_does_not_hide_the_row_problems_and_lines_count_every_line() -> None:
    text = (
        "# run 42\n"
        "sample_id,reference_genome,fastq_r1,notes\n"
        "\n"
        "S1,hg38,s3://b/S1_R1.fq,ok\n"
        '"S2",hg99,s3://b/S2_R1.fq,"two\nlines"\n'
        "S3,hg38,ftp://b/S3_R1.fq,x\n"
    )
    problems = failure(text)
    assert [(p.pointer, p.message.split(":")[0]) for p in problems] == [
        ("/columns/3", "line 2"),
        ("/rows/1/reference_genome", "line 5"),
        ("/rows/2/fastq_r1", "line 7"),  # the quoted cell above takes two lines
    ]


def test_a_missing_required_column_is_reported_once_not_per_row() -> None:
    problems = failure("sample_id,fastq_r1\nS1,s3://b/S1_R1.fq\nS2,s3://b/S2_R1.fq\n")
    assert problems == [Problem("/columns", "line 1: missing required column 'reference_genome'", "required")]


def test_bad_common_parameter_is_reported_once() -> None:
    text = "sample_id,fastq_r1\nS1,s3://b/S1_R1.fq\nS2,s3://b/S2_R1.fq\n"
    assert failure(text, common={"reference_genome": "hg99"}) == [
        Problem(
            "/common/reference_genome",
            "reference_genome must be one of hg19, hg38, GRCh37, GRCh38, T2T-CHM13, mm10, mm39 (got 'hg99')",
            "enum",
        ),
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_sheet(text: str) -> None:
    assert failure(text) == [
        Problem("", "the sample sheet is empty: it needs a header line and at least one row", "empty"),
    ]


def test_header_without_rows() -> None:
    assert failure("sample_id,reference_genome,fastq_r1\n") == [
        Problem("/rows", "the sample sheet has a header but no rows", "minItems"),
    ]


def test_too_many_rows_is_a_clear_limit() -> None:
    settings = Settings()
    assert settings.max_request_runs == 10_000
    with pytest.raises(PayloadTooLarge) as caught:
        parse_samplesheet(gatk_sheet(100_000), GATK, max_rows=settings.max_request_runs)
    assert caught.value.detail == (
        "the sample sheet has 100000 rows; a request may have at most 10000 (setting max_request_runs)"
    )
    assert caught.value.status_code == 413


def test_byte_limit() -> None:
    with pytest.raises(PayloadTooLarge, match=r"the sample sheet is \d+ bytes; the limit is 100"):
        parse_samplesheet(gatk_sheet(5), GATK, max_bytes=100)


def test_not_utf8() -> None:
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        parse_samplesheet(b"sample_id\n\xff\xfe\n", GATK)


def test_unreadable_csv() -> None:
    with pytest.raises(InvalidInput, match="not valid CSV"):
        parse_samplesheet('sample_id,reference_genome,fastq_r1\n"S1' + "x" * 200_000 + "\n", GATK)


def test_problems_are_capped() -> None:
    lines = ["sample_id,reference_genome,fastq_r1"] + [f"S{i},hg99,s3://b/S{i}_R1.fq" for i in range(2000)]
    problems = failure("\n".join(lines))
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == Problem(
        "/rows",
        f"more problems not shown: only the first {MAX_PROBLEMS} are listed",
        "truncated",
    )


def test_fifty_samples() -> None:
    sheet = parse_samplesheet(gatk_sheet(50), GATK)
    assert len(sheet.rows) == 50
    assert len(set(sheet.sample_ids)) == 50
