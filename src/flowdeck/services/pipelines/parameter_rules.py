"""Named cross-field rules: what JSON Schema cannot say well.

A pipeline file lists rules under ``rules:``; each names a ``check`` from
:data:`CHECKS` and that check's arguments::

    - name: paired_end            # the rule name problems report
      check: mate_pair
      first: fastq_r1
      second: fastq_r2
      message: optional text that replaces every message of this rule

Checks run after the schema, and a rule is skipped when a field it reads has
already failed the schema (its value is not what the check expects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.domain.pipelines import SpecError
from flowdeck.domain.runs import DATASET_INPUT

# (path below the parameters, message)
Finding = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class Rule:
    """One named rule with the check it applies and that check's arguments."""

    name: str
    check: str
    args: Mapping[str, Any]
    message: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The parameters this rule reads."""
        return CHECKS[self.check].fields(self.args)

    def apply(self, params: Mapping[str, Any]) -> list[Finding]:
        findings = CHECKS[self.check].run(params, self.args)
        if self.message is not None:
            return [(path, self.message) for path, _ in findings]
        return findings


def is_mate(first: str, second: str) -> bool:
    """True when ``second`` is ``first`` with one read number 1 changed to 2, or when either is a
    ``dataset:<id>``: a dataset's file name is not known here (the workflow compares the mates)."""
    if first.startswith(DATASET_INPUT) or second.startswith(DATASET_INPUT):
        return True
    if len(first) != len(second):
        return False
    diffs = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    return len(diffs) == 1 and first[diffs[0]] == "1" and second[diffs[0]] == "2"


def _mate_message(first: str, second: str) -> str:
    return (
        f"{second} must name the read-2 mate of {first}: the same URI with the read "
        "number 1 changed to 2 (for example _R1 to _R2)"
    )


def _mate_pair(params: Mapping[str, Any], args: Mapping[str, Any]) -> list[Finding]:
    first, second = args["first"], args["second"]
    if second not in params:
        return []
    if first not in params:
        return [((second,), f"{second} is given without its read-1 mate {first}")]
    if params[first] == params[second]:
        return [((second,), f"{second} is the same file as {first}")]
    if not is_mate(str(params[first]), str(params[second])):
        return [((second,), _mate_message(first, second))]
    return []


def _mate_list(params: Mapping[str, Any], args: Mapping[str, Any]) -> list[Finding]:
    field = args["field"]
    files = params.get(field)
    if not isinstance(files, list) or len(files) != 2:
        return []
    if not is_mate(str(files[0]), str(files[1])):
        return [((field, 1), _mate_message(f"{field}[0]", f"{field}[1]"))]
    return []


def _requires(params: Mapping[str, Any], args: Mapping[str, Any]) -> list[Finding]:
    given = args["if"]
    if given not in params:
        return []
    return [((name,), f"{name} is required when {given} is given") for name in args["then"] if name not in params]


def _only_with(params: Mapping[str, Any], args: Mapping[str, Any]) -> list[Finding]:
    field = args["field"]
    if field not in params:
        return []
    findings: list[Finding] = []
    for other, allowed in args["when"].items():
        if params.get(other) not in allowed:
            shown = " or ".join(str(value) for value in allowed)
            findings.append(((field,), f"{field} is only allowed when {other} is {shown}"))
    return findings


def _less_than(params: Mapping[str, Any], args: Mapping[str, Any]) -> list[Finding]:
    lower, upper = args["lower"], args["upper"]
    if lower not in params or upper not in params:
        return []
    try:
        ordered = params[lower] < params[upper]
    except TypeError:  # values the schema let through but that do not compare
        return []
    return [] if ordered else [((upper,), f"{upper} must be greater than {lower} ({params[lower]})")]


@dataclass(frozen=True)
class Check:
    """A kind of rule: its argument names (field-valued ones first) and its test."""

    run: Callable[[Mapping[str, Any], Mapping[str, Any]], list[Finding]]
    field_args: tuple[str, ...]
    list_args: tuple[str, ...] = ()
    mapping_args: tuple[str, ...] = ()

    def fields(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        names = [args[a] for a in self.field_args]
        names += [n for a in self.list_args for n in args[a]]
        names += [n for a in self.mapping_args for n in args[a]]
        return tuple(names)


CHECKS: dict[str, Check] = {
    "mate_pair": Check(_mate_pair, ("first", "second")),
    "mate_list": Check(_mate_list, ("field",)),
    "requires": Check(_requires, ("if",), list_args=("then",)),
    "only_with": Check(_only_with, ("field",), mapping_args=("when",)),
    "less_than": Check(_less_than, ("lower", "upper")),
}


def build_rule(raw: Any, where: str, properties: Mapping[str, Any]) -> Rule:
    """Check one ``rules:`` entry against the known parameters; SpecError if wrong."""
    if not isinstance(raw, dict):
        raise SpecError(where, "each rule must be a mapping with name and check")
    name, check = raw.get("name"), raw.get("check")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}.name", "a rule needs a name (a non-empty string)")
    if check not in CHECKS:
        raise SpecError(f"{where}.check", f"unknown check {check!r}; known: {', '.join(CHECKS)}")
    spec = CHECKS[check]
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise SpecError(f"{where}.message", "must be a string")
    args = {k: v for k, v in raw.items() if k not in {"name", "check", "message"}}
    expected = set(spec.field_args) | set(spec.list_args) | set(spec.mapping_args)
    extras = sorted(set(args) - expected)
    if extras:
        takes = ", ".join(sorted(expected))
        raise SpecError(f"{where}.{extras[0]}", f"not an argument of check {check} (it takes {takes})")
    args.update({a: [args[a]] for a in spec.list_args if isinstance(args.get(a), str)})
    for mapped in spec.mapping_args:
        when = args.get(mapped)
        if not isinstance(when, dict) or not when:
            raise SpecError(f"{where}.{mapped}", "must map parameter names to a value or a list")
        args[mapped] = {k: v if isinstance(v, list) else [v] for k, v in when.items()}
    for arg in sorted(expected):
        if arg not in args:
            raise SpecError(f"{where}.{arg}", f"check {check} needs {arg}")
    rule = Rule(name, check, args, message)
    for field in rule.fields:
        if field not in properties:
            raise SpecError(where, f"rule {name} names {field!r}, which is not a parameter")
    return rule
