"""Keep credentials out of logs.

:func:`redact` masks what looks like a secret in a piece of text: the value of
an ``Authorization`` header, ``Basic``/``Bearer`` credentials, flowdeck API
tokens (their public prefix is kept, to tell tokens apart), JWTs,
``password=…``-style pairs and the password in ``scheme://user:password@host``.
:class:`RedactingFilter` applies it to log records; :func:`install_redaction`
applies it to every record of the process, whichever logger or handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+"), rf"\1{MASK}"),
    # Credentials hold a digit, capital or symbol: prose such as "basic setup" stays.
    (
        re.compile(r"\b((?i:basic|bearer)\s+)(?=[a-z.]*[A-Z0-9+/=_~-])[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1{MASK}",
    ),
    (re.compile(r"\b(fd_[0-9a-f]{8}_)[A-Za-z0-9_-]+"), rf"\1{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|client_secret|api_?key|access_token|refresh_token|"
            r"id_token|token)([\"']?\s*[:=]\s*[\"']?)[^\s\"',&;}]+"
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), rf"\1{MASK}@"),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    if getattr(record, "_flowdeck_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging itself reports it later
        return
    record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._flowdeck_redacted = True


class RedactingFilter(logging.Filter):
    """A logging filter (for handlers, or dictConfig) that masks credentials in records."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


_installed: list[Callable[..., logging.LogRecord]] = []


def install_redaction() -> None:
    """Mask credentials in every log record made from now on (idempotent).

    Wraps the log record factory rather than adding a filter to some handlers,
    so records of every logger are covered, including handlers added later.
    """
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    _installed.append(previous)
    logging.setLogRecordFactory(factory)


def uninstall_redaction() -> None:
    """Undo :func:`install_redaction` (for tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
