"""A webhook receiver on 127.0.0.1 that checks every delivery with the Standard Webhooks
library (``standardwebhooks``), as a real receiver would; it can be stopped and started again
on the same port to play a receiver that is down for a while."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    """Records ``(webhook-id, payload)`` of each delivery whose signature verifies."""

    def __init__(self) -> None:
        with socket.socket() as probe:  # a free port, kept across stop/start
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.secret: str | None = None
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[str] = []
        self.status = 204
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.take(body, headers)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self, body: bytes, headers: dict[str, str]) -> None:
        assert self.secret is not None
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self._lock:
                self.rejected.append(f"{headers.get('webhook-id')}: {exc}")
            return
        if self.status < 300:
            with self._lock:
                self.received.append((headers["webhook-id"], json.loads(body) if payload is None else payload))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
