"""Request bodies read within a size limit, refused as soon as they outgrow it: the one reader.

Every door that takes a body reads it here: a declared Content-Length over the limit is refused
before a byte is read, a chunked body (no Content-Length) as soon as it outgrows the limit, both
with 413 naming the limit. JSON bodies then go through the one strict loader
(:mod:`flowdeck.domain.json_values`): anything it refuses is a malformed body (400). Whether a
well-formed body is valid is each door's model's business (422; WES keeps the spec's 400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.types import Message

from flowdeck.domain import json_values
from flowdeck.errors import InvalidInput, PayloadTooLarge, Problem


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body exceeds {limit} bytes", limit=limit)


def refuse_declared_length(request: Request, limit: int) -> None:
    """413 at once when the body says it is larger than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise _too_large(limit)


async def chunks_within(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; PayloadTooLarge once they add up to more than
    ``limit`` bytes (a chunked upload has no Content-Length to check first)."""
    refuse_declared_length(request, limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        yield chunk


def bounded(request: Request, limit: int) -> Request:
    """The same request, its body refused (PayloadTooLarge) once it outgrows ``limit`` bytes:
    for readers that take the stream themselves (Starlette's form parser spools files)."""
    refuse_declared_length(request, limit)
    size = 0
    receive = request.receive

    async def bounded_receive() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, bounded_receive)


async def body_within(request: Request, limit: int) -> bytes:
    """The whole body, held in memory: at most ``limit`` bytes."""
    chunks = [chunk async for chunk in chunks_within(request, limit)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def strict_json(raw: bytes | str, what: str = "the body") -> Any:
    """``raw`` read by the one strict loader; InvalidInput (400) naming where it is not JSON."""
    try:
        return json_values.loads(raw)
    except json_values.JsonRefused as exc:
        problem = Problem(exc.pointer or "/", exc.reason, "json")
        raise InvalidInput(f"{what} is not acceptable JSON: {exc}", errors=[problem.as_dict()]) from None


async def json_within(request: Request, limit: int) -> Any:
    """The JSON document the body holds (at most ``limit`` bytes); an empty body is 400."""
    raw = await body_within(request, limit)
    if not raw.strip():
        raise InvalidInput("the body is empty; it must be a JSON document")
    return strict_json(raw)


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], raw: Any) -> Model:
    """``raw`` as ``model``; its problems go through api.errors' one validation mapping (422)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def json_model(model: type[Model], optional: bool = False) -> Callable[[Request], Awaitable[Model]]:
    """A dependency: the body read by the one reader, validated as ``model`` (instead of a
    FastAPI body parameter, whose read has no limit). Pair it with :func:`body_schema`. With
    ``optional``, no body at all means the model's defaults."""

    async def read(request: Request) -> Model:
        limit = request.app.state.services.settings.max_upload_bytes
        if optional:
            raw = await body_within(request, limit)
            return validated(model, strict_json(raw) if raw.strip() else {})
        return validated(model, await json_within(request, limit))

    return read


def body_schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` documenting a :func:`json_model` body as a declared body would be."""
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": required, "content": schema}}
