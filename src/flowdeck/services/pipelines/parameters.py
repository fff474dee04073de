"""A pipeline's parameter model: JSON Schema 2020-12, defaults and named rules.

Validation (seed 001's request states, folded into one call):

* **strict** (the default): the payload must match the schema as sent. Unknown
  keys and wrong types are problems.
* **relaxed** (``strict=False``) first applies these relaxations, guided by the
  schema, then validates strictly:

  1. ``null`` parameters are ``{}``.
  2. A key that is not a parameter is matched to one after trimming, folding
     case and reading runs of spaces and hyphens as ``_`` (``" Sample-ID"`` →
     ``sample_id``), unless that parameter is also given.
  3. ``null`` (where the schema does not allow null) and empty or blank strings
     mean *absent*: the default applies, or the parameter is reported missing.
  4. Strings are trimmed where the schema says string.
  5. Where the schema says integer, number or boolean, the strings ``"30"``,
     ``"0.05"``, ``"1e-3"`` become numbers and ``"true"``/``"false"`` (any case)
     booleans.
  6. Where the schema says array, a single value becomes a one-element list;
     its items get rules 3 to 5.

  Relaxations follow ``properties``, ``items`` and local ``$ref`` only (not
  ``anyOf``/``oneOf``).

Defaults fill absent top-level parameters before validation. Every problem is
reported at once, each with a JSON pointer, a message and the rule it broke (a
JSON Schema keyword, or the name of a cross-field rule).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flowdeck.domain.pipelines import SpecError
from flowdeck.errors import Problem, ValidationFailed
from flowdeck.services.pipelines.parameter_rules import Rule, build_rule
from flowdeck.services.pipelines.relaxation import MAX_DEPTH, is_array, normalize_key, relax

if TYPE_CHECKING:
    from jsonschema import ValidationError

DIALECT = "https://json-schema.org/draft/2020-12/schema"
__all__ = ["MAX_DEPTH", "ParameterModel", "normalize_key", "pointer", "show", "subject"]
_ABSENCE = frozenset({"required", "dependentRequired"})
_COUNTED = frozenset({"minItems", "maxItems", "minProperties", "maxProperties"})
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


class ParameterModel:
    """Checks and resolves one pipeline version's parameters."""

    def __init__(self, schema: dict[str, Any], rules: list[Rule], defaults: dict[str, Any], label: str) -> None:
        self.schema = schema
        self.rules = rules
        self.defaults = defaults
        self.label = label
        # jsonschema (~3 MB) is imported where a model is built or checked, not with this module:
        # the API server imports it for its helpers and builds no model until a request needs the
        # pipeline catalog (services.context).
        from jsonschema import Draft202012Validator

        self._validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    @classmethod
    def build(cls, raw_schema: Any, raw_rules: Any, raw_defaults: Any, label: str) -> ParameterModel:
        """Check a catalog file's ``parameters``, ``rules`` and ``defaults``; SpecError if wrong."""
        schema = _check_schema(raw_schema)
        properties: dict[str, Any] = schema.get("properties", {})
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):
            raise SpecError("rules", "must be a list of rules")
        rules = [build_rule(raw, f"rules[{i}]", properties) for i, raw in enumerate(raw_rules)]
        names = [rule.name for rule in rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SpecError(f"rules[{i}].name", f"rule name {name!r} is used twice")
        return cls(schema, rules, _check_defaults(schema, raw_defaults), label)

    @property
    def properties(self) -> list[str]:
        """Parameter names, in the order the schema lists them."""
        return list(self.schema["properties"])

    @property
    def required(self) -> list[str]:
        return list(self.schema.get("required", []))

    def is_array(self, name: str) -> bool:
        """True when the schema says parameter ``name`` is a list."""
        return is_array(self.schema, name)

    # --- publishing

    def published(self, *, schema_id: str, title: str, description: str) -> dict[str, Any]:
        """The JSON Schema 2020-12 document clients see, with defaults and rules in it."""
        doc = copy.deepcopy(self.schema)
        doc.update({"$schema": DIALECT, "$id": schema_id, "title": title})
        doc.setdefault("description", description)
        for name, value in self.defaults.items():
            doc["properties"][name]["default"] = copy.deepcopy(value)
        if self.rules:
            doc["x-flowdeck-rules"] = [
                {"name": r.name, "check": r.check, **r.args} | ({"message": r.message} if r.message else {})
                for r in self.rules
            ]
        return {"$schema": doc.pop("$schema"), "$id": doc.pop("$id"), **doc}

    # --- validation

    def validate(self, parameters: Any, *, strict: bool = True, prefix: str = "") -> dict[str, Any]:
        """Resolved parameters (defaults applied), or ValidationFailed with every problem.
        ``prefix`` is prepended to every pointer (``/parameters``, ``/rows/7``)."""
        if parameters is None and not strict:
            parameters = {}
        problems = _shape_problems(parameters, prefix)
        if problems:
            raise self._failure(problems)
        params = dict(parameters)
        if not strict:
            params = relax(self.schema, params)
        for name, value in self.defaults.items():
            if name not in params:
                params[name] = copy.deepcopy(value)
        problems = self._schema_problems(params, prefix)
        # Rules see absent fields as absent; a field with a wrong value skips the rule.
        failed = {_top_name(p.pointer[len(prefix) :]) for p in problems if p.rule not in _ABSENCE}
        for rule in self.rules:
            if failed.isdisjoint(rule.fields):
                problems += [Problem(prefix + pointer(path), msg, rule.name) for path, msg in rule.apply(params)]
        if problems:
            raise self._failure(problems)
        return copy.deepcopy(params)

    def _schema_problems(self, params: dict[str, Any], prefix: str) -> list[Problem]:
        seen: dict[tuple[str, str], Problem] = {}
        for error in self._validator.iter_errors(params):
            for path, message, rule in _explain(error):
                problem = Problem(prefix + pointer(path), message, rule)
                seen.setdefault((problem.pointer, rule), problem)
        # A wrong type explains everything else said about the same value.
        typed = {pointer for pointer, rule in seen if rule == "type"}
        kept = [p for (ptr, rule), p in seen.items() if rule == "type" or ptr not in typed]
        return sorted(kept, key=lambda p: (p.pointer, p.rule))

    def _failure(self, problems: list[Problem]) -> ValidationFailed:
        shown = "; ".join(f"{p.pointer or '/'}: {p.message}" for p in problems[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        return ValidationFailed(f"invalid parameters for {self.label} ({count}): {shown}{more}", problems)


# --- building


def _check_schema(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError("parameters", "must be a JSON Schema (a mapping with type: object and properties)")
    schema = copy.deepcopy(raw)
    if schema.setdefault("$schema", DIALECT) != DIALECT:
        raise SpecError("parameters.$schema", f"must be {DIALECT} (or left out)")
    if schema.setdefault("type", "object") != "object":
        raise SpecError("parameters.type", "must be object: parameters are a mapping of names to values")
    schema.setdefault("properties", {})
    # Strict mode rejects unknown keys unless the operator opted out explicitly.
    schema.setdefault("additionalProperties", False)
    from jsonschema import Draft202012Validator  # first use; see ParameterModel.__init__
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        raise SpecError("parameters" + (f".{where}" if where else ""), exc.message) from None
    properties = schema["properties"]
    for i, name in enumerate(schema.get("required", [])):
        if name not in properties:
            raise SpecError(f"parameters.required[{i}]", f"{name!r} is not among parameters.properties")
    return schema


def _check_defaults(schema: dict[str, Any], raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError("defaults", "must map parameter names to values")
    properties: dict[str, Any] = schema["properties"]
    defaults: dict[str, Any] = {}
    for name, prop in properties.items():
        if isinstance(prop, dict) and "default" in prop:
            defaults[name] = prop.pop("default")  # published from one place: self.defaults
    for name, value in raw.items():
        if name not in properties:
            raise SpecError(f"defaults.{name}", "is not among parameters.properties")
        if name in defaults and defaults[name] != value:
            raise SpecError(f"defaults.{name}", "differs from the default written in parameters.properties")
        defaults[name] = value
    for name in schema.get("required", []):
        if name in defaults:
            raise SpecError(f"defaults.{name}", "a parameter with a default must not be in parameters.required")
    from jsonschema import Draft202012Validator  # first use; see ParameterModel.__init__

    unrequired = {k: v for k, v in schema.items() if k != "required"}
    for error in Draft202012Validator(unrequired).iter_errors(defaults):
        for path, message, _rule in _explain(error):
            raise SpecError("defaults." + ".".join(str(p) for p in path), message)
    return defaults


# --- explaining errors


def pointer(path: tuple[str | int, ...] | list[str | int]) -> str:
    """A JSON pointer (RFC 6901) for a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _top_name(relative: str) -> str:
    """The parameter a relative pointer starts at ("" for the root)."""
    head = relative[1:].split("/", 1)[0] if relative else ""
    return head.replace("~1", "/").replace("~0", "~")


def subject(path: tuple[str | int, ...]) -> str:
    """How a message names a value: ``fastq_files[1]``, ``options.mode``, ``parameters``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "parameters"


def show(value: Any) -> str:
    """A short, safe rendering of a value for a message (never recursive)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return "an array" if isinstance(value, list) else "an object"


def _explain(error: ValidationError) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    path = tuple(error.absolute_path)
    keyword = str(error.validator)
    # jsonschema types these as unions with its "unset" marker; a raised error has them set.
    schema: Any = error.schema
    value: Any = error.validator_value
    if keyword == "required":
        for name in value:
            if isinstance(error.instance, dict) and name not in error.instance:
                yield (*path, name), f"{subject((*path, name))} is required", "required"
    elif keyword == "additionalProperties" and isinstance(error.instance, dict):
        known = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        what = "a known parameter" if not path else "allowed here"
        for name in error.instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                shown = subject((*path, name)) if len(str(name)) <= 60 else repr(str(name)[:57] + "...")
                yield (*path, name), f"{shown} is not {what} (known: {', '.join(known)})", keyword
    elif keyword == "dependentRequired" and isinstance(error.instance, dict):
        for name, needs in value.items():
            for need in needs:
                if name in error.instance and need not in error.instance:
                    yield (*path, need), f"{subject((*path, need))} is required when {name} is given", keyword
    else:
        yield path, _message(keyword, error, subject(path)), keyword


def _message(keyword: str, error: ValidationError, who: str) -> str:
    value: Any = error.validator_value
    schema: Any = error.schema
    custom = schema.get("x-messages", {}) if isinstance(schema, dict) else {}
    phrase = custom.get(keyword) if isinstance(custom, dict) else None
    if not isinstance(phrase, str):
        phrase = _phrase(keyword, value)
    instance: Any = error.instance
    got = f" (got {show(instance)})"
    if keyword in _COUNTED and isinstance(instance, list | dict):
        got = f" (got {len(instance)})"
    elif keyword == "uniqueItems":
        got = ""
    if phrase is None:  # never jsonschema's own message: it echoes the whole value
        return f"{who} breaks the schema's {keyword} rule{got}"
    return f"{who} {phrase}{got}"


def _phrase(keyword: str, value: Any) -> str | None:
    if keyword == "type":
        names = [_TYPE_NAMES.get(t, t) for t in ([value] if isinstance(value, str) else value)]
        return "must be " + " or ".join(names)
    if keyword == "enum":
        return "must be one of " + ", ".join(str(v) for v in value)
    phrases = {
        "const": f"must be {show(value)}",
        "pattern": f"must match the pattern {value}",
        "format": f"must be a valid {value}",
        "minimum": f"must be at least {value}",
        "maximum": f"must be at most {value}",
        "exclusiveMinimum": f"must be greater than {value}",
        "exclusiveMaximum": f"must be less than {value}",
        "multipleOf": f"must be a multiple of {value}",
        "minLength": f"must be at least {value} character{'s' if value != 1 else ''} long",
        "maxLength": f"must be at most {value} character{'s' if value != 1 else ''} long",
        "minItems": f"must have at least {value} item{'s' if value != 1 else ''}",
        "maxItems": f"must have at most {value} item{'s' if value != 1 else ''}",
        "uniqueItems": "must not repeat an item",
        "oneOf": "must match exactly one of the allowed forms",
        "anyOf": "must match at least one of the allowed forms",
        "not": "is not allowed",
        "minProperties": f"must have at least {value} field{'s' if value != 1 else ''}",
        "maxProperties": f"must have at most {value} field{'s' if value != 1 else ''}",
    }
    return phrases.get(keyword)


def _shape_problems(parameters: Any, prefix: str) -> list[Problem]:
    """What no schema should have to say: an object, not too deep, finite numbers."""
    if not isinstance(parameters, dict):
        return [Problem(prefix, f"parameters must be an object (got {show(parameters)})", "type")]
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(parameters, ())]
    while stack:  # iterative: a hostile payload may nest thousands of levels
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return [Problem(prefix, f"parameters are nested deeper than {MAX_DEPTH} levels", "maxDepth")]
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(prefix + pointer(path), f"{subject(path)} must be a finite number", "finite"))
        elif isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):  # only Python callers can do this
                problems.append(
                    Problem(prefix + pointer(path), f"{subject(path)} has a key that is not a string", "type")
                )
                continue
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
    return sorted(problems, key=lambda p: p.pointer)
