"""Relaxed mode: the documented relaxations, applied before strict validation.

The rules themselves are listed in :mod:`flowdeck.services.pipelines.parameters`. They
follow the schema (``properties``, ``items``, local ``$ref``); what they cannot
fix is left for the strict check to report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32
_ABSENT = object()
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}
_INT = re.compile(r"[+-]?\d{1,30}")
_FLOAT = re.compile(r"[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][+-]?\d{1,3})?")


def relax(schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every relaxation applied (a new mapping)."""
    return _Relaxer(schema).object(params, schema, 0)


def is_array(schema: dict[str, Any], name: str) -> bool:
    """True when the schema says top-level parameter ``name`` is a list."""
    return "array" in _types(_Relaxer(schema).resolve(schema["properties"].get(name)))


def normalize_key(key: str) -> str:
    """How relaxed mode compares keys: trimmed, case-folded, spaces and hyphens as _."""
    return re.sub(r"[\s\-]+", "_", key.strip()).casefold()


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    values = schema.get("enum", [schema["const"]] if "const" in schema else [])
    return {_JSON_TYPES[type(v)] for v in values if type(v) in _JSON_TYPES}


def _from_text(text: str, types: set[str]) -> Any:
    """A string read as the number or boolean the schema wants, else the string."""
    if "boolean" in types and text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if types & {"integer", "number"}:
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            number = float(text)
            if math.isfinite(number) and ("number" in types or number.is_integer()):
                return number if "number" in types else int(number)
    return text


class _Relaxer:
    """Applies the documented relaxations, following the schema."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def resolve(self, schema: Any) -> Mapping[str, Any]:
        for _ in range(8):  # local $ref chains only; anything else is left to the validator
            if not isinstance(schema, dict):
                return {}
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            schema = target
        return {}

    def object(self, value: dict[str, Any], schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties", {})
        index: dict[str, str | None] = {}
        for name in props:
            index[normalize_key(name)] = None if normalize_key(name) in index else name  # ambiguous → no match
        out: dict[str, Any] = {}
        for key, item in value.items():
            target = key if key in props else index.get(normalize_key(key))
            if target is None or (target in value and target != key) or target in out:
                out[key] = item  # left for the strict check to report
                continue
            relaxed = self.value(item, props[target], depth + 1)
            if relaxed is not _ABSENT:
                out[target] = relaxed
        return out

    def value(self, value: Any, schema: Any, depth: int) -> Any:
        resolved = self.resolve(schema)
        types = _types(resolved)
        if (value is None and "null" not in types) or (isinstance(value, str) and not value.strip()):
            return _ABSENT
        if "array" in types and not isinstance(value, list):
            value = [value]
        if isinstance(value, list):
            if "array" not in types or depth > MAX_DEPTH:
                return value
            items = [self.value(v, resolved.get("items", {}), depth + 1) for v in value]
            return [v for v in items if v is not _ABSENT]
        if isinstance(value, str):
            text = value.strip()
            if "string" in types:
                return text
            converted = _from_text(text, types)
            return value if converted is text else converted
        if isinstance(value, dict) and "object" in types and depth <= MAX_DEPTH:
            return self.object(value, resolved, depth)
        return value
