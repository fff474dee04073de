"""Request bodies read within a size limit, refused as soon as they outgrow it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from flowdeck.errors import PayloadTooLarge


async def chunks_within(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; PayloadTooLarge once they add up to more than
    ``limit`` bytes (a chunked upload has no Content-Length to check first)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        yield chunk


async def body_within(request: Request, limit: int) -> bytes:
    """The whole body, held in memory: at most ``limit`` bytes."""
    chunks = [chunk async for chunk in chunks_within(request, limit)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
