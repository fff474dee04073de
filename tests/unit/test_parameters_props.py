"""Property tests: no payload makes validate() raise anything but ValidationFailed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.errors import ValidationFailed
from flowdeck.services.pipelines.catalog import Catalog

CATALOG = Catalog.load()
PIPELINES = CATALOG.names()
# A Galaxy tool's parameters are Galaxy's schema (docs/galaxy-tools.md): flowdeck's own model is
# empty, so there is nothing near-valid to draw from it.
MODELLED = [name for name in PIPELINES if CATALOG.get(name).target.kind != "galaxy_tool"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text()
    | st.sampled_from(["", " ", "30", "1e999", "true", "FALSE", "s3://a/x_R1.fq"])
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


def near_valid(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads using the pipeline's own keys (some case-mangled), with any values."""
    keys = CATALOG.get(name).model.properties
    key = st.sampled_from(keys) | st.sampled_from([k.upper() for k in keys]) | st.text(max_size=8)
    return st.dictionaries(key, json_values, max_size=len(keys) + 2)


def check(name: str, payload: Any, strict: bool) -> None:
    pipeline = CATALOG.get(name)
    try:
        resolved = pipeline.validate(payload, strict=strict)
    except ValidationFailed as exc:
        problems = exc.problems
    else:
        # Whatever validates, strictly or not, is a fixed point of strict validation.
        assert pipeline.validate(resolved) == resolved
        return
    assert problems  # a failure always says what is wrong
    for problem in problems:
        assert problem.pointer == "" or problem.pointer.startswith("/")
        assert problem.message
        assert problem.rule


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("strict", [True, False])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values)
def test_any_json_is_valid_or_a_validation_failure(name: str, strict: bool, payload: Any) -> None:
    check(name, payload, strict)


@pytest.mark.parametrize("name", MODELLED)
@pytest.mark.parametrize("strict", [True, False])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_near_valid_payloads(name: str, strict: bool, data: st.DataObject) -> None:
    check(name, data.draw(near_valid(name)), strict)


@settings(max_examples=100, deadline=None)
@given(
    quality=st.integers(min_value=0, max_value=100),
    depth=st.integers(min_value=1, max_value=10000),
    sample=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
def test_relaxed_reads_numbers_written_as_text(quality: int, depth: int, sample: str) -> None:
    params = {
        "sample_id": sample,
        "reference_genome": "hg38",
        "fastq_r1": f"s3://b/{sample}_R1.fq.gz",
        "fastq_r2": f"s3://b/{sample}_R2.fq.gz",
        "quality_threshold": str(quality),
        "depth_threshold": f" {depth} ",
    }
    resolved = CATALOG.get("gatk_variant_calling", "1.0.0").validate(params, strict=False)
    assert (resolved["quality_threshold"], resolved["depth_threshold"]) == (quality, depth)
