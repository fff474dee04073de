"""A pipeline's parameter form, made from its JSON Schema, and the form's fields read back as
parameters. Reading back only converts text to the JSON types the schema names; whether the
values are valid is the jobs service's one validation (the same 422s as ``POST /jobs``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flowdeck.domain.principal import Principal
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines import galaxy_tools
from flowdeck.services.pipelines.catalog import Pipeline
from flowdeck.services.runs.pipeline_runs import visible_pipeline

_SCALARS = {"string": "text", "integer": "integer", "number": "number", "boolean": "checkbox"}


@dataclass(frozen=True)
class FormField:
    """One input of the form."""

    name: str
    kind: str  # text, integer, number, checkbox, select, lines (a list of strings), json
    required: bool
    description: str = ""
    default: str = ""
    options: list[str] = field(default_factory=list)


def _resolved(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``prop`` with a local ``$ref`` (``#/$defs/name``) merged in, its own keys winning."""
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**_resolved(defs.get(ref.removeprefix("#/$defs/"), {}), defs), **prop}
    return prop


def _kind(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "select"
    kind = prop.get("type")
    if kind == "array" and (prop.get("items") or {}).get("type") == "string":
        return "lines"
    return _SCALARS.get(kind, "json") if isinstance(kind, str) else "json"


def _shown(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if kind == "json":
        return json.dumps(value, indent=2)
    if kind == "checkbox":
        return "on" if value else ""
    return str(value)


def fields_of(schema: dict[str, Any]) -> list[FormField]:
    """The form's fields: one per top-level property, required ones first."""
    defs = schema.get("$defs") or {}
    required = set(schema.get("required") or [])
    made = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolved(raw if isinstance(raw, dict) else {}, defs)
        kind = _kind(prop)
        made.append(
            FormField(
                name=name,
                kind=kind,
                required=name in required,
                description=str(prop.get("description") or ""),
                default=_shown(prop.get("default"), kind),
                options=[str(v) for v in prop.get("enum") or []],
            )
        )
    return sorted(made, key=lambda f: not f.required)


def parameters_of(fields: list[FormField], posted: dict[str, str]) -> dict[str, Any]:
    """The posted form as parameters: empty fields left out (the pipeline's defaults apply), text
    turned into the schema's type where it reads as one and passed on as text where it does not
    (validation then names the field)."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = posted.get(f"p.{f.name}", "")
        if f.kind == "checkbox":
            values[f.name] = raw == "on"
        elif raw.strip():
            values[f.name] = _typed(raw.strip(), f.kind, f.options)
    return values


def _typed(raw: str, kind: str, options: list[str]) -> Any:
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    if kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if kind == "select" and raw not in options:
        return _typed(raw, "json", options)  # an enum of numbers posts its text
    return raw


def shared_parameters_of(fields: list[FormField], posted: dict[str, str]) -> dict[str, Any]:
    """A sample sheet's shared parameters from its form: only the fields filled in, so that the
    sheet's columns and the pipeline's defaults give the rest (a true/false is a choice there)."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = posted.get(f"p.{f.name}", "").strip()
        if raw:
            values[f.name] = raw == "true" if f.kind == "checkbox" else _typed(raw, f.kind, f.options)
    return values


async def pipeline_form(
    services: AppContext, user: Principal, name: str, version: str | None
) -> tuple[Pipeline, list[FormField]]:
    """The pipeline the caller may run (its newest version, or ``version``) and its form's fields,
    from its JSON Schema (a Galaxy tool's as Galaxy publishes it)."""
    pipeline = visible_pipeline(services, user, name, version or None)
    return pipeline, fields_of(await galaxy_tools.schema(services, pipeline))
