"""services.runs' NUL and nesting check refuses exactly what the walk it replaced refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowdeck.errors import InvalidInput
from flowdeck.services import runs

DEPTH = 100


def _strings(value: Any) -> Iterator[str]:
    """The generator over a stack that services.runs used before (the reference)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH:
            raise InvalidInput(f"JSON values may nest at most {DEPTH} levels deep")
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from (str(key) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _outcome(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except InvalidInput as exc:
        return str(exc)


def _reference(value: Any) -> bool:
    return any("\x00" in text for text in _strings(value))


texts = st.sampled_from(["", "a", "\x00", "a\x00b", "é"]) | st.text(max_size=3)
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
documents = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(texts | st.integers(), children, max_size=3)
    ),  # int keys: str() of them is checked
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A document wrapped in 95..105 levels of lists and objects, with siblings on the way."""
    value = draw(documents)
    for _ in range(draw(st.integers(95, 105))):
        sibling = draw(documents)
        value = draw(st.sampled_from([[value], [sibling, value], [value, sibling], {"k": value, "": sibling}]))
    return value


@given(st.lists(documents, max_size=13) | deep())
def test_the_same_values_are_refused_with_the_same_message(value: Any) -> None:
    assert _outcome(runs._has_nul, value) == _outcome(_reference, value)


@pytest.mark.parametrize("depth", [99, 100, 101])
@pytest.mark.parametrize("leaf", [1, "x", "\x00", [], {}, None])
def test_nesting_limit(depth: int, leaf: Any) -> None:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    assert _outcome(runs._has_nul, value) == _outcome(_reference, value)


def _too_deep() -> Any:
    value: Any = 1
    for _ in range(DEPTH + 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        [_too_deep(), "\x00"],
        ["\x00", _too_deep()],
        [[_too_deep()], {"k": "\x00"}],
        {"\x00": _too_deep()},
        {"k": _too_deep(), "j": "\x00"},
        {"k": "\x00", "j": _too_deep()},
    ],
    ids=[
        "NUL last",
        "NUL first",
        "NUL in a later object",
        "NUL key",
        "NUL in a later value",
        "NUL in an earlier value",
    ],
)
def test_which_problem_is_met_first(value: Any) -> None:
    assert _outcome(runs._has_nul, value) == _outcome(_reference, value)
