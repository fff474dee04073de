"""What a list or a stream is narrowed to: the filters the doors build and ``db/`` turns into queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flowdeck.domain.states import State


@dataclass(frozen=True)
class RunFilter:
    """What a list of runs is narrowed to. ``groups=None`` means every group."""

    groups: frozenset[str] | None = None
    states: frozenset[State] | None = None
    tags: Mapping[str, str] | None = None
    dataset_id: str | None = None
    pipeline_name: str | None = None
    research_group: str | None = None
    request_id: str | None = None
    origin: str | None = None
    description_contains: str | None = None  # case-insensitive substring; trigram-indexed but on MariaDB (0014)


@dataclass(frozen=True)
class DatasetFilter:
    """What a list of datasets is narrowed to. ``groups=None`` means every group."""

    groups: frozenset[str] | None = None
    research_group: str | None = None
    name: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class RequestFilter:
    """What a list of requests is narrowed to. ``groups=None`` means every group."""

    groups: frozenset[str] | None = None
    state: str | None = None
    pipeline_name: str | None = None
    research_group: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """What a stream asks for; None: any. ``groups`` is the caller's visible groups (None: all)."""

    run_id: str | None = None
    request_id: str | None = None
    pipeline_name: str | None = None
    research_group: str | None = None
    kind: str | None = None
    groups: frozenset[str] | None = None
