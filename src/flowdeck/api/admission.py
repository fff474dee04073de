"""Paged list reads take turns, so a flood of lists cannot delay anyone's status poll.

One API process answers everything on one event loop. A list page costs the loop a few
milliseconds of work (routing, rows into views, JSON), a status poll a fraction of one; when a
dozen clients loop over lists, a poll waits in the loop's queue behind a dozen page renders
(bench/scale.py measured the p99 going from ~6 ms to 65-140 ms). Here the list reads of one
process are admitted ``list_concurrency`` at a time: the others wait, costing the loop nothing,
and a poll or a submission waits behind at most that many renders. The price is the flood's own
rate, which drops by about a third (figures in bench/NOTES.md): under a flood, lists wait, polls do not.

A turn ends when the answer's head is sent, not when its body is: a client that never reads its
page must not keep every other list waiting.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A list route is a GET route that pages with this query parameter.
PAGING_PARAMETER = "page_token"


class ListTurns:
    """Admits the GET requests of paged list routes ``concurrency`` at a time."""

    def __init__(self, routes: Iterable[BaseRoute], concurrency: int) -> None:
        lists = [path for route, path in served_routes(routes) if _is_paged_list(route)]
        # Exact paths first: the common case costs one set lookup, not a regex per route.
        self.paths = frozenset(path for path in lists if "{" not in path)
        self.patterns: tuple[re.Pattern[str], ...] = tuple(compile_path(path)[0] for path in lists if "{" in path)
        self._turns = asyncio.Semaphore(concurrency)

    def admits(self, scope: Scope) -> bool:
        """Whether this request is a paged list read, which takes a turn."""
        if scope["method"] != "GET":
            return False
        path: str = scope["path"]
        return path in self.paths or any(pattern.match(path) for pattern in self.patterns)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """``app`` in its turn; the turn is handed on once the answer's head is sent."""
        await self._turns.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._turns.release()

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await app(scope, receive, send_then_release)
        finally:
            release()


def served_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[BaseRoute, str]]:
    """Every route an app serves with its full path, included routers flattened."""
    for route in routes:
        included: Any = getattr(route, "original_router", None)  # FastAPI includes routers lazily
        mounted: Any = getattr(route, "routes", None)
        if included is not None:
            context: Any = getattr(route, "include_context")  # noqa: B009 (private to FastAPI's types)
            yield from served_routes(included.routes, prefix + context.prefix)
        elif mounted is not None and not getattr(route, "methods", None):
            yield from served_routes(mounted, prefix + getattr(route, "path", ""))
        else:
            yield route, prefix + getattr(route, "path", "")


def _is_paged_list(route: BaseRoute) -> bool:
    if not isinstance(route, APIRoute) or "GET" not in (route.methods or ()):
        return False
    return any(param.alias == PAGING_PARAMETER for param in route.dependant.query_params)
