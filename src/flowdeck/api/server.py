"""Serving the app with uvicorn, alone or beside a worker in one event loop."""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI

from flowdeck.settings import Settings


def make_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
        access_log=False, proxy_headers=True, server_header=False, limit_concurrency=1000,
    )
    return uvicorn.Server(config)


async def serve(app: FastAPI, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until interrupted; then set ``stop`` so a worker beside us ends too."""
    server = make_server(app, settings)
    try:
        await server.serve()
    finally:
        if stop is not None:
            stop.set()
