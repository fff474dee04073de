"""botocore's own ``omics`` service model, for the HealthOmics fake: request routing,
wire (de)serialisation of the REST-JSON protocol, and validation of every request and
answer against the model (botocore's ParamValidator, plus the enum, length and pattern
rules it leaves to the service)."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

# Java's \p{L}-style classes as the model writes them: [\p{L}||\p{M}||...]+
_CATEGORY_CLASS = re.compile(r"^\[((?:\\p\{[A-Z]\}(?:\|\|)?)+)\]\+$")


class ModelError(Exception):
    """A request or answer breaks the service model."""


class OmicsModel:
    """The service model and the operations' routes."""

    def __init__(self) -> None:
        self.service = ServiceModel(Loader().load_service_model("omics", "service-2"))
        self._routes: list[tuple[str, re.Pattern[str], int, OperationModel]] = []
        for name in self.service.operation_names:
            op = self.service.operation_model(name)
            template = op.http["requestUri"].split("?", 1)[0]
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\+?\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self._routes.append((op.http["method"], re.compile(f"^{pattern}$"), literal, op))
        self._routes.sort(key=lambda route: -route[2])

    def route(self, method: str, path: str) -> tuple[OperationModel, dict[str, str]] | None:
        for verb, pattern, _, op in self._routes:
            if verb == method and (match := pattern.match(path)):
                return op, {key: unquote(value) for key, value in match.groupdict().items()}
        return None

    def request_params(self, op: OperationModel, labels: dict[str, str], query: str, body: bytes) -> dict[str, Any]:
        """The operation's input as boto3 gave it, read back from the wire, then validated."""
        shape = op.input_shape
        params: dict[str, Any] = {}
        if shape is None:
            return params
        queries = parse_qs(query, keep_blank_values=True)
        document = json.loads(body) if body.strip() else {}
        if not isinstance(document, dict):
            raise ModelError("the request body is not a JSON object")
        for name, member in shape.members.items():
            where, wire = member.serialization.get("location"), member.serialization.get("name", name)
            if where == "uri" and wire in labels:
                params[name] = labels[wire]
            elif where == "querystring" and wire in queries:
                values = queries[wire]
                params[name] = values if member.type_name == "list" else _scalar(member, values[0])
            elif where is None and name in document:
                params[name] = document.pop(name)
        if document:
            raise ModelError(f"members not in {shape.name}: {sorted(document)}")
        validate(params, shape)
        return params

    def answer_body(self, op: OperationModel, answer: dict[str, Any]) -> bytes:
        """The operation's output validated against the model and written as REST-JSON."""
        shape = op.output_shape
        if shape is None:
            return b""
        validate(answer, shape)
        return json.dumps(_wire(answer, shape)).encode()

    def error_status(self, code: str) -> int:
        for shape in self.service.error_shapes:
            if shape.name == code:
                return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        return 400


def _scalar(shape: Shape, text: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ModelError(f"{shape.name}: {text!r} is not an integer") from None
    if shape.type_name == "boolean":
        return text == "true"
    return text


def validate(value: Any, shape: Shape) -> None:
    """botocore's checks (required members, types, minimums) and the model's enums, maximums
    and patterns; ModelError naming every problem."""
    report = ParamValidator().validate(value, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _constraints(value, shape, shape.name)
    if problems:
        raise ModelError("; ".join(problems))


def _constraints(value: Any, shape: Shape, where: str) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(value, dict) and not meta.get("document"):
        members = shape.members  # type: ignore[attr-defined]
        return [
            p
            for key, item in value.items()
            if key in members
            for p in _constraints(item, members[key], f"{where}.{key}")
        ]
    if kind == "list" and isinstance(value, list):
        found = _length(len(value), meta, where)
        return found + [p for item in value for p in _constraints(item, shape.member, f"{where}[]")]  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, dict):
        key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
        return [
            p for k, v in value.items() for p in _constraints(k, key_shape, where) + _constraints(v, value_shape, where)
        ]
    if kind == "string" and isinstance(value, str):
        found = _length(len(value), meta, where)
        if shape.enum and value not in shape.enum:  # type: ignore[attr-defined]
            found.append(f"{where}: {value!r} not in {shape.enum}")  # type: ignore[attr-defined]
        if "pattern" in meta and not _matches(meta["pattern"], value):
            found.append(f"{where}: {value!r} does not match {meta['pattern']}")
        return found
    if kind in ("integer", "long") and isinstance(value, int) and "max" in meta and value > meta["max"]:
        return [f"{where}: {value} > {meta['max']}"]
    return []


def _length(size: int, meta: dict[str, Any], where: str) -> list[str]:
    return [f"{where}: length {size} > {meta['max']}"] if "max" in meta and size > meta["max"] else []


def _matches(pattern: str, text: str) -> bool:
    if classes := _CATEGORY_CLASS.match(pattern):
        allowed = set(re.findall(r"\\p\{([A-Z])\}", classes.group(1)))
        return bool(text) and all(unicodedata.category(char)[0] in allowed for char in text)
    return re.fullmatch(pattern, text) is not None


def _wire(value: Any, shape: Shape) -> Any:
    """REST-JSON body form: timestamps in the member's format, names as the model gives them."""
    kind = shape.type_name
    if kind == "structure" and not shape.metadata.get("document"):
        members = shape.members  # type: ignore[attr-defined]
        return {members[k].serialization.get("name", k): _wire(v, members[k]) for k, v in value.items()}
    if kind == "list":
        return [_wire(item, shape.member) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {k: _wire(v, shape.value) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp" and isinstance(value, datetime):
        if shape.serialization.get("timestampFormat", shape.metadata.get("timestampFormat")) == "iso8601":
            return value.isoformat().replace("+00:00", "Z")
        return value.timestamp()
    return value
