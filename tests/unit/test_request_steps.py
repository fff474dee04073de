"""The request-level step's declaration and the submit-time check of the samples' groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.domain.pipelines import SpecError
from flowdeck.domain.request_steps import RequestStep, group_problems, parse_request_step

STEP = RequestStep("deseq2", Path("deseq2.smk"), "condition", 2, ("quant.tsv",), ())


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([None, None, None], []),
        (["A", "A", "B", "B"], []),
        (["A", "B", "A", "B", "C", "C"], []),
        (["A", None, "B"], [(1, "condition is missing while other samples give one")]),
        (["A", "A"], [(None, "every sample has condition 'A': deseq2 needs two to compare")]),
        (["A", "A", "B", "C"], [(None, "deseq2 needs at least 2 samples per condition; 'B' has 1, 'C' has 1")]),
    ],
)
def test_which_groups_can_be_compared(groups: list[str | None], expected: list[tuple[int | None, str]]) -> None:
    assert group_problems(STEP, groups) == expected


def test_a_declaration_is_read_with_its_defaults(tmp_path: Path) -> None:
    (tmp_path / "step.smk").write_text("rule all:\n    input: []\n")
    value = {"name": "deseq2", "snakefile": "step.smk", "group_by": "condition", "inputs": ["quant.tsv"]}
    step = parse_request_step(value, tmp_path / "p.yaml", ["condition"])
    assert step == RequestStep("deseq2", tmp_path / "step.smk", "condition", 2, ("quant.tsv",), ())


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"snakefile": "missing.smk"}, "request_step.snakefile"),
        ({"group_by": "tissue"}, "request_step"),
        ({"min_per_group": 0}, "request_step.min_per_group"),
        ({"inputs": []}, "request_step.inputs"),
        ({"extra": 1}, "request_step"),
    ],
)
def test_a_broken_declaration_names_its_field(tmp_path: Path, patch: dict[str, object], field: str) -> None:
    (tmp_path / "step.smk").write_text("rule all:\n    input: []\n")
    value = {"name": "deseq2", "snakefile": "step.smk", "group_by": "condition", "inputs": ["quant.tsv"]} | patch
    with pytest.raises(SpecError) as raised:
        parse_request_step(value, tmp_path / "p.yaml", ["condition"])
    assert raised.value.field == field
