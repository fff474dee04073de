"""A pipeline's request-level step: one run after all the sample runs of a request.

Declared in a catalog file (docs/pipelines.md, docs/adr/0019):

```yaml
request_step:
  name: deseq2                        # names the step run (tag request_step)
  snakefile: workflows/rnaseq/deseq2.smk
  group_by: condition                 # the parameter that groups the samples
  min_per_group: 2                    # at least two groups of at least this many samples
  inputs: [quant.tsv]                 # each sample run's outputs handed to the step
  parameters: [padj_threshold]        # sample parameters passed on (the first sample's value)
```

The step runs for a request whose samples all name a group; a request whose
samples name none has no step; anything between is refused at submit
(:func:`group_problems`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.domain.pipelines import SpecError

_KEYS = {"name", "snakefile", "group_by", "min_per_group", "inputs", "parameters"}


@dataclass(frozen=True)
class RequestStep:
    """What runs after every sample of a request has completed."""

    name: str
    snakefile: Path
    group_by: str
    min_per_group: int
    inputs: tuple[str, ...]
    parameters: tuple[str, ...]


def parse_request_step(value: Any, pipeline_file: Path, parameters: Sequence[str]) -> RequestStep | None:
    """The ``request_step`` field of a catalog file; SpecError names what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - _KEYS:
        raise SpecError("request_step", f"takes only {', '.join(sorted(_KEYS))}")
    names = {key: _word(value.get(key), f"request_step.{key}") for key in ("name", "snakefile", "group_by")}
    snakefile = (pipeline_file.parent / names["snakefile"]).resolve()
    if not snakefile.is_file():
        raise SpecError("request_step.snakefile", f"file not found: {snakefile}")
    passed = _words(value.get("parameters", []), "request_step.parameters")
    for name in (names["group_by"], *passed):
        if name not in parameters:
            raise SpecError("request_step", f"{name!r} is not a parameter")
    minimum = value.get("min_per_group", 2)
    if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
        raise SpecError("request_step.min_per_group", "must be a positive integer")
    inputs = _words(value.get("inputs"), "request_step.inputs")
    if not inputs:
        raise SpecError("request_step.inputs", "must name at least one output of the sample runs")
    return RequestStep(names["name"], snakefile, names["group_by"], minimum, inputs, passed)


def _word(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, "is required (a non-empty string)")
    return value.strip()


def _words(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(field, "must be a list of names")
    return tuple(_word(item, field) for item in value)


def group_problems(step: RequestStep, groups: Sequence[str | None]) -> list[tuple[int | None, str]]:
    """Why the samples' groups (``None``: not given) cannot be compared, as (sample index or
    None for the whole request, message); empty when they can, or when no sample names one."""
    if all(group is None for group in groups):
        return []
    missing: list[tuple[int | None, str]] = [
        (i, f"{step.group_by} is missing while other samples give one") for i, g in enumerate(groups) if g is None
    ]
    if missing:
        return missing
    counts = Counter(groups)
    if len(counts) < 2:
        only = next(iter(counts))
        return [(None, f"every sample has {step.group_by} {only!r}: {step.name} needs two to compare")]
    small = sorted(str(group) for group, n in counts.items() if n < step.min_per_group)
    if small:
        return [
            (
                None,
                f"{step.name} needs at least {step.min_per_group} samples per {step.group_by}; "
                + ", ".join(f"{group!r} has {counts[group]}" for group in small),
            )
        ]
    return []
