"""The transition table, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from flowdeck.domain.states import (
    ACTIVE,
    SIMPLE_STATES,
    TERMINAL,
    TRANSITIONS,
    State,
    can_transition,
    is_terminal,
    seed_status,
    simple_state,
)

# The table written out as pairs, independently of the module, so a change to
# either one is caught.
ALLOWED = {
    (State.QUEUED, State.INITIALIZING),
    (State.QUEUED, State.CANCELING),
    (State.QUEUED, State.SYSTEM_ERROR),
    *(
        (State.INITIALIZING, t)
        for t in (
            State.QUEUED,
            State.RUNNING,
            State.PAUSED,
            State.UNKNOWN,
            State.CANCELING,
            State.COMPLETE,
            State.EXECUTOR_ERROR,
            State.SYSTEM_ERROR,
            State.PREEMPTED,
        )
    ),
    *(
        (s, t)
        for s in (State.RUNNING, State.PAUSED, State.UNKNOWN)
        for t in (
            State.RUNNING,
            State.PAUSED,
            State.UNKNOWN,
            State.CANCELING,
            State.COMPLETE,
            State.EXECUTOR_ERROR,
            State.SYSTEM_ERROR,
            State.PREEMPTED,
        )
        if s is not t
    ),
    *(
        (State.CANCELING, t)
        for t in (State.CANCELED, State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.PREEMPTED)
    ),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_every_pair(current: State, target: State) -> None:
    assert can_transition(current, target) is ((current, target) in ALLOWED)


def test_terminal_states_never_change() -> None:
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        assert is_terminal(state)
    assert {State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED, State.PREEMPTED} == TERMINAL


def test_no_self_transitions_and_every_active_state_can_end() -> None:
    for state in State:
        assert not can_transition(state, state)
    for state in ACTIVE:
        # From every non-terminal state some path reaches a terminal one.
        seen, frontier = {state}, [state]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, state


def test_every_state_has_one_simple_word_and_one_seed_status() -> None:
    expected = {
        State.QUEUED: ("queued", "PENDING"),
        State.INITIALIZING: ("queued", "PENDING"),
        State.RUNNING: ("in_progress", "RUNNING"),
        State.PAUSED: ("in_progress", "RUNNING"),
        State.UNKNOWN: ("in_progress", "RUNNING"),
        State.CANCELING: ("in_progress", "RUNNING"),
        State.COMPLETE: ("completed", "COMPLETED"),
        State.EXECUTOR_ERROR: ("failed", "FAILED"),
        State.SYSTEM_ERROR: ("failed", "FAILED"),
        State.PREEMPTED: ("failed", "FAILED"),
        State.CANCELED: ("canceled", "CANCELED"),
    }
    for state, (word, status) in expected.items():
        assert simple_state(state) == word
        assert seed_status(state) == status
    assert set().union(*SIMPLE_STATES.values()) == set(State)
