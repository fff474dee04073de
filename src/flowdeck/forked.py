"""One-off start-up work in a forked child: what the work imports leaves with the child."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection

from flowdeck.errors import ConfigurationError


def check_in_child(work: Callable[[], object], what: str) -> None:
    """Run ``work`` in a forked child and raise its failure here as a :class:`ConfigurationError`.

    For work a long-running server does once at start (migrations, the pipeline catalog's check)
    whose libraries it would otherwise keep for its whole life. A ConfigurationError keeps its
    detail; any other failure reads ``"{what} failed: …"``. Call before any thread or event loop
    exists (a fork copies only the calling thread). Off Linux the work runs in this process.
    """
    if not sys.platform.startswith("linux"):
        work()
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, what, sender), name=f"flowdeck: {what}")
    child.start()
    sender.close()
    try:
        error = receiver.recv() if receiver.poll(None) else None
    except EOFError:  # the child died without a word (killed, or os._exit)
        error = None
    child.join()
    if error is not None:
        detail, extra = error
        raise ConfigurationError(detail, **extra)
    if child.exitcode != 0:
        raise ConfigurationError(f"{what} failed: exit status {child.exitcode}")


def _child(work: Callable[[], object], what: str, sender: Connection) -> None:
    try:
        work()
    except ConfigurationError as exc:  # raised again by the parent with the same detail
        sender.send((exc.detail, exc.extra))
        raise SystemExit(1) from None
    except BaseException as exc:
        sender.send((f"{what} failed: {type(exc).__name__}: {exc}", {}))
        raise SystemExit(1) from None
    sender.send(None)
