"""Serving the app with uvicorn, alone or beside a worker in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from flowdeck.errors import ConfigurationError
from flowdeck.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after shutting down; a graceful stop of
    flowdeck should instead end with exit status 0, after the worker stopped too."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def bind(settings: Settings) -> socket.socket:
    """The listening socket, bound before anything else starts, so a busy port is one clear error."""
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from exc
    return sock


def make_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )
    return _Server(config)


async def serve(
    app: FastAPI, settings: Settings, stop: asyncio.Event | None = None, sock: socket.socket | None = None
) -> None:
    """Serve on ``sock`` (bound by :func:`bind`) until SIGINT/SIGTERM; then set ``stop`` so a
    worker beside us ends too."""
    server = make_server(app, settings)
    try:
        await server.serve(sockets=[sock or bind(settings)])
    finally:
        if stop is not None:
            stop.set()
