"""domain.json_values refuses exactly what JSON or a database cannot hold, first problem first."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.domain import json_values
from flowdeck.domain.json_values import MAX_DEPTH, JsonRefused


def _reference(value: Any) -> tuple[str, str] | None:
    """The first problem in document order, found with an explicit stack (no recursion)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, pointer = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character", pointer
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return "a lone surrogate (text that is not Unicode)", pointer
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number JSON cannot carry (NaN or infinite)", pointer
        elif isinstance(item, (dict, list)) and item:
            if depth >= MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels", pointer
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    text = key if isinstance(key, str) else str(key)
                    where = pointer + "/" + _escape(text)
                    children += [(text, depth, where), (child, depth + 1, where)]
            else:
                children = [(child, depth + 1, f"{pointer}/{i}") for i, child in enumerate(item)]
            stack.extend(reversed(children))
    return None


def _escape(key: str) -> str:
    return key.encode("utf-8", "backslashreplace").decode().replace("~", "~0").replace("/", "~1")


def _outcome(value: Any) -> tuple[str, str] | None:
    try:
        json_values.check(value)
    except JsonRefused as exc:
        return exc.reason, exc.pointer
    return None


texts = st.sampled_from(["", "a", "\x00", "a\x00b", "é", "\ud800", "x\udfff", "a/b~"]) | st.text(max_size=3)
numbers = st.integers() | st.floats() | st.sampled_from([math.inf, -math.inf, math.nan])
leaves = st.none() | st.booleans() | numbers | texts
documents = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(texts | st.integers(), children, max_size=3)
    ),  # int keys: str() of them is checked
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A document wrapped in 95..105 levels of lists and objects, with a leaf beside it on the way
    (leaves, not whole documents: a hundred documents per example made the health check flaky)."""
    value = draw(documents)
    for _ in range(draw(st.integers(95, 105))):
        sibling = draw(leaves)
        value = draw(st.sampled_from([[value], [sibling, value], [value, sibling], {"k": value, "": sibling}]))
    return value


@settings(deadline=None)
@given(st.lists(documents, max_size=13) | deep())
def test_the_first_problem_is_refused_with_its_pointer(value: Any) -> None:
    assert _outcome(value) == _reference(value)


@pytest.mark.parametrize("depth", [99, 100, 101])
@pytest.mark.parametrize("leaf", [1, "x", "\x00", [], {}, None, math.inf])
def test_nesting_limit(depth: int, leaf: Any) -> None:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    assert _outcome(value) == _reference(value)


@pytest.mark.parametrize(
    "raw",
    [
        b"[1e400]",
        b'{"a": -1e400}',
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b'"\\ud800"',
        b'{"\\udfff": 1}',
        b'"a\\u0000"',
        b"\xff\xfe\xfa",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
        b"[" * (MAX_DEPTH + 1) + b"1" + b"]" * (MAX_DEPTH + 1),
        b"",
        b"[1,",
    ],
)
def test_loads_refuses_what_json_cannot_carry(raw: bytes) -> None:
    with pytest.raises(JsonRefused):
        json_values.loads(raw)


@pytest.mark.parametrize("raw", [b"[1e308, -1e308, 0.5]", b'{"\\u00e9": "\\ud83d\\ude00"}', b"[" * 100 + b"]" * 100])
def test_loads_keeps_what_json_carries(raw: bytes) -> None:
    assert json_values.loads(raw) == json.loads(raw)


def test_readable_replaces_only_what_cannot_be_encoded() -> None:
    fixed, replaced = json_values.readable({"a": [math.inf, "x\ud800", 1.5], "\udfff": "ok"})
    assert fixed == {"a": [json_values.UNREADABLE_NUMBER, "x\\ud800", 1.5], "\\udfff": "ok"}
    assert replaced == ["/a/0", "/a/1", "/\\udfff"]
    json.dumps(fixed, allow_nan=False).encode("utf-8")
