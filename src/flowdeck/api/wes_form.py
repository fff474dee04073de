"""Reading a WES ``POST /runs`` body: multipart exactly as the spec, or JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from flowdeck.api.http_body import body_within, json_within, refuse_declared_length
from flowdeck.api.multipart import FilePart, FormItem, MalformedForm, parse_form
from flowdeck.errors import InvalidInput
from flowdeck.services.runs.attachments import MAX_ATTACHMENTS, Attachment, safe_name
from flowdeck.services.runs.service import NewRun, parse_json_object

TEXT_FIELDS = (
    "workflow_params",
    "workflow_type",
    "workflow_type_version",
    "tags",
    "workflow_engine",
    "workflow_engine_version",
    "workflow_engine_parameters",
    "workflow_url",
)
EXTENSION_FIELDS = ("research_group", "description", "use_cached")
# Text fields a form may have: each of the above once; more is a malformed submission.
MAX_FIELDS = 64


async def read_run_request(request: Request, max_bytes: int) -> NewRun:
    """A :class:`NewRun` from the request, or InvalidInput saying what is wrong."""
    refuse_declared_length(request, max_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _from_json(await _json_body(request, max_bytes))
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _from_form(request, content_type, max_bytes)
    raise InvalidInput("POST /runs takes multipart/form-data (as the WES spec says) or application/json")


async def _json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    body = await json_within(request, max_bytes)
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def _from_json(body: dict[str, Any]) -> NewRun:
    unknown = set(body) - set(TEXT_FIELDS) - set(EXTENSION_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name in ("workflow_params", "tags", "workflow_engine_parameters"):
        value = body.get(name)
        if isinstance(value, str):
            value = parse_json_object(value, name, string_values=name != "workflow_params")
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f"{name} must be a JSON object")
        if value is not None and name != "workflow_params" and not all(isinstance(v, str) for v in value.values()):
            raise InvalidInput(f"{name} values must be strings")
        values[name] = value or {}
    return _new_run(values, {k: body.get(k) for k in (*TEXT_FIELDS, *EXTENSION_FIELDS)}, [])


async def _from_form(request: Request, content_type: str, max_bytes: int) -> NewRun:
    if content_type == "multipart/form-data":
        try:
            items = parse_form(
                await body_within(request, max_bytes),
                request.headers["content-type"],
                max_files=MAX_ATTACHMENTS,
                max_fields=MAX_FIELDS,
            )
        except MalformedForm as exc:
            raise InvalidInput(f"malformed form body: {exc}") from None
    else:
        items = await _urlencoded(request, max_bytes)
    texts = _texts(items)
    attachments = _attachments(items)
    values = {
        "workflow_params": parse_json_object(texts.get("workflow_params"), "workflow_params"),
        "tags": parse_json_object(texts.get("tags"), "tags", string_values=True),
        "workflow_engine_parameters": parse_json_object(
            texts.get("workflow_engine_parameters"), "workflow_engine_parameters", string_values=True
        ),
    }
    return _new_run(values, texts, attachments)


async def _urlencoded(request: Request, max_bytes: int) -> list[FormItem]:
    # Read within the limit (Starlette's form reader has none for a chunked body), then split as
    # Starlette does: latin-1 bytes, each name and value percent-decoded as UTF-8.
    raw = await body_within(request, max_bytes)
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise InvalidInput(f"malformed form body: {exc}") from None
    return list(pairs)


def _texts(items: list[FormItem]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for key, value in items:
        if key == "workflow_attachment":
            continue
        if key not in TEXT_FIELDS and key not in EXTENSION_FIELDS:
            raise InvalidInput(f"unknown form field {key!r}")
        if isinstance(value, FilePart):
            raise InvalidInput(f"form field {key!r} must be text, not a file")
        if key in texts:
            raise InvalidInput(f"form field {key!r} given more than once")
        texts[key] = value
    return texts


def _attachments(items: list[FormItem]) -> list[Attachment]:
    """The uploaded files (their count and total size are services.attachments.check_all's)."""
    attachments: list[Attachment] = []
    for key, value in items:
        if key != "workflow_attachment":
            continue
        if isinstance(value, str):
            raise InvalidInput("workflow_attachment parts must be files with a filename")
        attachments.append(Attachment(safe_name(value.filename), value.content))
    return attachments


def _new_run(objects: dict[str, Any], texts: dict[str, Any], attachments: list[Attachment]) -> NewRun:
    missing = [name for name in ("workflow_type", "workflow_type_version", "workflow_url") if not texts.get(name)]
    if missing:
        raise InvalidInput(f"missing required field(s): {', '.join(missing)}")
    for name in (*TEXT_FIELDS, *EXTENSION_FIELDS):
        value = texts.get(name)
        if value is not None and name not in objects and name != "use_cached" and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string")
    return NewRun(
        workflow_type=texts["workflow_type"],
        workflow_type_version=texts["workflow_type_version"],
        workflow_url=texts["workflow_url"],
        workflow_params=objects["workflow_params"],
        tags=objects["tags"],
        workflow_engine=texts.get("workflow_engine") or None,
        workflow_engine_version=texts.get("workflow_engine_version") or None,
        workflow_engine_parameters=objects["workflow_engine_parameters"],
        attachments=attachments,
        research_group=texts.get("research_group") or None,
        description=texts.get("description") or None,
        use_cached=_flag(texts.get("use_cached")),
        origin="wes",
    )


def _flag(value: Any) -> bool:
    """``use_cached``: true or false (a form's text, or a JSON body's boolean)."""
    if value is None or value in (False, "false", ""):
        return False
    if value in (True, "true"):
        return True
    raise InvalidInput("use_cached must be true or false")
