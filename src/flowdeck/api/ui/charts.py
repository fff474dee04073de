"""The overview's charts as geometry for inline SVG (templates/_charts.html): no script, no
library; the page's table beside each chart carries the same numbers for screen readers."""

from __future__ import annotations

from dataclasses import dataclass

from flowdeck.domain.states import State, simple_state
from flowdeck.services.runs.overview import Overview

WIDTH = 640
ROW = 26  # height of one horizontal bar's row
LABEL = 170  # room for the labels left of horizontal bars
COLUMNS_HEIGHT = 160


@dataclass(frozen=True)
class Bar:
    label: str
    value: str
    x: float
    y: float
    width: float
    height: float
    kind: str = ""  # a CSS class: the simple state, or median / p90


def duration(seconds: float) -> str:
    """Seconds as people read them: 42 s, 3 min 5 s, 2 h 4 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _scale(largest: float, room: float) -> float:
    return room / largest if largest > 0 else 0.0


def states(figures: Overview) -> list[Bar]:
    """One horizontal bar per state that has runs, most runs first."""
    found = sorted(figures.by_state.items(), key=lambda item: (-item[1], item[0]))
    scale = _scale(max((n for _, n in found), default=0), WIDTH - LABEL - 80)
    return [
        Bar(state, f"{n:,}", LABEL, i * ROW, max(n * scale, 1), ROW - 6, f"state-{simple_state(State(state))}")
        for i, (state, n) in enumerate(found)
    ]


def days(figures: Overview) -> list[Bar]:
    """One column per day, oldest left; the bars stand on the chart's base line."""
    step = WIDTH / len(figures.per_day)
    scale = _scale(max((n for _, n in figures.per_day), default=0), COLUMNS_HEIGHT - 10)
    return [
        Bar(day.isoformat(), f"{n:,}", i * step + 1, COLUMNS_HEIGHT - n * scale, step - 2, n * scale)
        for i, (day, n) in enumerate(figures.per_day)
    ]


def durations(figures: Overview) -> list[Bar]:
    """Two bars per pipeline, on one scale: the 90th percentile, and the median over it."""
    scale = _scale(max((d.p90 for d in figures.durations), default=0), WIDTH - LABEL - 80)
    bars = []
    for i, found in enumerate(figures.durations):
        bars.append(Bar(found.pipeline, duration(found.p90), LABEL, i * ROW, max(found.p90 * scale, 1), ROW - 6, "p90"))
        bars.append(
            Bar(
                found.pipeline,
                duration(found.median),
                LABEL,
                i * ROW + 5,
                max(found.median * scale, 1),
                ROW - 16,
                "median",
            )
        )
    return bars
