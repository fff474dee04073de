"""JSON every database stores and every client reads back: the one strictness rule.

Python's ``json`` takes more than JSON can carry: ``NaN`` and ``Infinity``, numbers that
overflow to infinity (``1e400``), lone surrogates (``"\\ud800"``, which no UTF-8 encoder
writes), and nesting deep enough to exhaust the interpreter's recursion limit. Each one, once
stored, makes every answer that shows it fail. :func:`loads` parses a body or a form field and
:func:`check` checks values already parsed (or built in Python); both refuse such values with
:class:`JsonRefused`, which names the JSON pointer of the first problem. PostgreSQL text holds
no NUL, so strings (keys included) holding one are refused too. :func:`readable` is the read
side: rows stored before this rule are served with a placeholder in place of what cannot be
encoded.
"""

from __future__ import annotations

import json
from math import isfinite
from typing import Any

MAX_DEPTH = 100
"""Values nest at most this many levels below the document (the document itself is level 0)."""
UNREADABLE_NUMBER = "<unreadable number>"
TOO_DEEP = "<nested too deeply>"
_NUL = "\x00"


class JsonRefused(ValueError):
    """A value JSON cannot carry, or text that is not JSON; ``pointer`` says where."""

    def __init__(self, reason: str, pointer: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.pointer = pointer

    def __str__(self) -> str:
        return f"{self.reason} at {self.pointer or '/'}"


def loads(raw: bytes | str) -> Any:
    """The JSON document in ``raw``: JsonRefused if it is not JSON or holds what JSON cannot carry."""
    value = _parse(raw)
    check(value)
    return value


def _parse(raw: bytes | str) -> Any:
    # Checked at once, not left to the caller: a deep value that json.loads took (up to the
    # recursion limit) would fail json.dumps later, e.g. in an Idempotency-Key fingerprint.
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8 text") from None
    except ValueError as exc:
        raise JsonRefused(f"not valid JSON ({exc})") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def check(value: Any) -> None:
    """JsonRefused naming the first value (document order) that JSON or a database cannot hold.

    Recursive, but never deeper than MAX_DEPTH + 1 frames: a deeper container is refused
    before its children are visited. Keys that are not strings are checked as ``str(key)``."""
    _check(value, 0)


def _check(value: Any, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, dict):
        if value and depth >= MAX_DEPTH:
            raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels")
        for key, child in value.items():
            text = key if isinstance(key, str) else str(key)
            try:
                _check_text(text)
                _check_child(child, depth)
            except JsonRefused as exc:
                exc.pointer = "/" + _escape(text) + exc.pointer
                raise
    elif isinstance(value, list):
        if value and depth >= MAX_DEPTH:
            raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels")
        for index, child in enumerate(value):
            try:
                _check_child(child, depth)
            except JsonRefused as exc:
                exc.pointer = f"/{index}{exc.pointer}"
                raise
    elif isinstance(value, float) and not isfinite(value):
        raise JsonRefused("a number JSON cannot carry (NaN or infinite)")


def _check_child(child: Any, depth: int) -> None:
    # Leaves checked here, without a call per leaf: most of a document is leaves.
    if isinstance(child, str):
        _check_text(child)
    elif isinstance(child, (dict, list)):
        _check(child, depth + 1)
    elif isinstance(child, float) and not isfinite(child):
        raise JsonRefused("a number JSON cannot carry (NaN or infinite)")


def _check_text(text: str) -> None:
    if _NUL in text:
        raise JsonRefused("a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonRefused("a lone surrogate (text that is not Unicode)") from None


def _escape(key: str) -> str:
    # A pointer is shown in answers: a lone surrogate in a key is written as \udXXX there too.
    readable_key = key if key.isascii() else key.encode("utf-8", "backslashreplace").decode("utf-8")
    return readable_key.replace("~", "~0").replace("/", "~1")


def readable(value: Any) -> tuple[Any, list[str]]:
    """``value`` with what cannot be encoded replaced, and the JSON pointers replaced.

    Non-finite numbers become UNREADABLE_NUMBER, text with lone surrogates is kept with each
    surrogate written as ``\\udXXX``, and containers nested past MAX_DEPTH become TOO_DEEP."""
    replaced: list[str] = []
    return _readable(value, "", 0, replaced), replaced


def _readable(value: Any, pointer: str, depth: int, replaced: list[str]) -> Any:
    if isinstance(value, str):
        return _readable_text(value, pointer, replaced)
    if isinstance(value, float) and not isfinite(value):
        replaced.append(pointer or "/")
        return UNREADABLE_NUMBER
    if isinstance(value, (dict, list)) and value and depth > MAX_DEPTH:
        replaced.append(pointer or "/")
        return TOO_DEEP
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            text = key if isinstance(key, str) else str(key)
            where = f"{pointer}/{_escape(text)}"
            out[_readable_text(text, where, replaced)] = _readable(child, where, depth + 1, replaced)
        return out
    if isinstance(value, list):
        return [_readable(child, f"{pointer}/{i}", depth + 1, replaced) for i, child in enumerate(value)]
    return value


def _readable_text(text: str, pointer: str, replaced: list[str]) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        replaced.append(pointer or "/")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
