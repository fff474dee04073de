"""The slot-sharing rule (domain.fair_share.plan, ADR 0024)."""

from __future__ import annotations

from flowdeck.domain.fair_share import plan


def test_a_group_with_nothing_executing_gets_the_freed_slot() -> None:
    assert plan(["a", "b"], 1, {"a": 1}, {}, {}) == {"b": 1}


def test_slots_follow_the_weights() -> None:
    # a weighs 2: 6 slots from zero go 4 to a, 2 to b.
    assert plan(["a", "b"], 6, {}, {"a": 2.0}, {}) == {"a": 4, "b": 2}


def test_the_slots_given_in_a_round_count() -> None:
    # b and c catch up with a (3 executing) before a gets any.
    assert plan(["a", "b", "c"], 5, {"a": 3}, {}, {}) == {"b": 3, "c": 2}


def test_a_group_at_its_limit_gets_none_and_leftover_slots_stay_free() -> None:
    assert plan(["a", "b"], 8, {}, {}, {"a": 2, "b": 0}) == {"a": 2}


def test_ties_go_by_name_and_nothing_is_given_without_slots_or_groups() -> None:
    assert plan(["b", "a"], 1, {}, {}, {}) == {"a": 1}
    assert plan(["a"], 0, {}, {}, {}) == {}
    assert plan([], 3, {}, {}, {}) == {}
