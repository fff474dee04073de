"""Loopback servers for tests: a free port, and moto's S3 server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on loopback, for the block; yields its URL (skips without moto)."""
    server_module = pytest.importorskip("moto.server")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def shared_store_env(database_url: str, s3_url: str, bucket: str) -> dict[str, str]:
    """The settings every "host" of a separate-hosts set-up shares: the database and an S3 bucket
    on the moto server (its test credentials)."""
    return {
        "FLOWDECK_DATABASE_URL": database_url,
        "FLOWDECK_STORAGE": "s3",
        "FLOWDECK_S3_BUCKET": bucket,
        "FLOWDECK_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
