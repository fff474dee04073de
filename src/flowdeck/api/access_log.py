"""The outermost layer of the app: an optional access log, a 500 logged once, and list reads
taking turns (api/admission.py).

Starlette's error middleware calls our handler for an unexpected exception (which logs it
with its traceback and answers 500) and then raises it again for the server, which logs the
same traceback a second time. This layer ends it there, and logs only what no handler saw.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.api.admission import ListTurns

log = logging.getLogger("flowdeck.access")
errors_log = logging.getLogger("flowdeck.api.errors")

PRINCIPAL_KEY = "flowdeck.principal"
LOGGED_KEY = "flowdeck.error_logged"
# The server's own ``send``, for GET /events' body chunks only (api/routes/events.py says why).
SERVER_SEND_KEY = "flowdeck.server_send"


class OuterLayer:
    """Wraps an ASGI app: one access line per HTTP request when ``access_log`` is on; paged list
    reads admitted by ``list_turns``."""

    def __init__(self, app: ASGIApp, *, access_log: bool, list_turns: ListTurns) -> None:
        self.app = app
        self.access_log = access_log
        self.list_turns = list_turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = [0]
        scope[SERVER_SEND_KEY] = send

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if self.list_turns.admits(scope):
                await self.list_turns.run(self.app, scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        except Exception:
            if not scope.get(LOGGED_KEY):
                errors_log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            status[0] = status[0] or 500
        finally:
            if self.access_log:
                _log_access(scope, status[0], time.perf_counter() - started)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    # The path only: a query string may carry a token, and headers are never logged.
    log.info(
        "%s %s %d %.1fms principal=%s",
        scope.get("method"),
        scope.get("path"),
        status,
        seconds * 1000,
        scope.get(PRINCIPAL_KEY, "-"),
    )
