"""Prometheus metrics of one process (API and/or worker), built per instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters and histograms flowdeck records. ``runs_by_state`` is filled
    from the database when scraped, so it is true across processes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs_by_state = Gauge(
            "flowdeck_runs", "Runs by state (from the database)", ["state"], registry=self.registry
        )
        self.submit_seconds = Histogram(
            "flowdeck_submit_seconds",
            "Time to accept and store a submission",
            ["door"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.transition_seconds = Histogram(
            "flowdeck_transition_seconds",
            "Time a run spent in a state before the worker moved it",
            ["from_state", "to_state"],
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200, 86400),
        )
        self.backend_errors = Counter(
            "flowdeck_backend_errors", "Engine calls that failed", ["backend", "kind"], registry=self.registry
        )
        self.sync_passes = Counter("flowdeck_sync_passes", "Sync passes run", registry=self.registry)
        self.runs_synced = Counter(
            "flowdeck_runs_synced", "Runs asked of their engine", ["backend"], registry=self.registry
        )
        self.dispatches = Counter(
            "flowdeck_dispatches", "Runs handed to an engine", ["backend", "outcome"], registry=self.registry
        )
