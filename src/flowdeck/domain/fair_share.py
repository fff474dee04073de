"""How free execution slots are shared among research groups (ADR 0024).

Each slot goes, one at a time, to the waiting group with the fewest executing runs per unit of
weight, counting the slots already given in this round; ties go to the group first by name. A
group at its own limit of executing runs gets none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping


def plan(
    waiting: Iterable[str],
    free: int,
    executing: Mapping[str, int],
    weights: Mapping[str, float],
    room: Mapping[str, int],
) -> dict[str, int]:
    """Slots per group for the next claim. ``executing``: the group's runs in this slot pool;
    ``room``: how many more runs a group with a limit may start (a group not in it: no limit)."""
    given: dict[str, int] = {}
    heap = [(_load(g, executing, weights, 0), g) for g in waiting if room.get(g, free) > 0]
    heapq.heapify(heap)
    while heap and free > 0:
        _, group = heapq.heappop(heap)
        given[group] = given.get(group, 0) + 1
        free -= 1
        if given[group] < room.get(group, given[group] + 1):
            heapq.heappush(heap, (_load(group, executing, weights, given[group]), group))
    return given


def _load(group: str, executing: Mapping[str, int], weights: Mapping[str, float], given: int) -> float:
    return (executing.get(group, 0) + given) / weights.get(group, 1.0)
