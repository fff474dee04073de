"""services.attachments.safe_name takes and refuses exactly what the version before its ASCII
fast path did, with the same names and messages."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flowdeck.errors import InvalidInput
from flowdeck.services.runs.attachments import safe_name


def _reference(raw: str | None) -> str:
    """safe_name as it was: NFC and unicodedata for every name, PurePosixPath for its result."""
    if not raw:
        raise InvalidInput("every workflow_attachment part needs a filename")
    name = unicodedata.normalize("NFC", raw).replace("\\", "/")
    if "\x00" in name or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput("attachment filename contains control characters")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") for part in name.split("/")) or name.startswith("./"):
        raise InvalidInput(f"attachment filename {raw!r} must be a relative path without '..'")
    if len(name) > 512:
        raise InvalidInput("attachment filename is too long")
    return str(path)


def _outcome(check: object, raw: str | None) -> tuple[str, str]:
    try:
        return "name", check(raw)  # type: ignore[operator]
    except InvalidInput as exc:
        return "refused", str(exc)


pieces = st.sampled_from(
    ["a", ".", "..", "/", "\\", "\x00", "\t", "\x7f", "\x85", "e\u0301", "é", " ", "\u2028", "x.txt"]
)
names = st.lists(pieces | st.text(max_size=3), max_size=8).map("".join)


@given(names | st.text())
@example(None)
@example("a" * 512)
@example("a" * 513)
@example("é" * 512)
@example("e\u0301" * 300)  # 600 characters, 300 after NFC
@example("a/./b")
@example(".")
@example("a/.")
@example("./a")
@example("//a")
@example("a\\..\\b")
def test_the_same_names_are_taken_and_refused(raw: str | None) -> None:
    assert _outcome(safe_name, raw) == _outcome(_reference, raw)


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character(code: int) -> None:
    for raw in (chr(code), f"a{chr(code)}b", f"dir/{chr(code)}.txt"):
        assert _outcome(safe_name, raw) == _outcome(_reference, raw)
