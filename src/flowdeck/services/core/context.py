"""What every use case needs: settings, the database and the backends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from flowdeck.backends.registry import Registry
from flowdeck.db.engine import Database
from flowdeck.services.core.blocking import TrackedPool
from flowdeck.services.core.group_commit import GroupCommit
from flowdeck.services.core.metrics import Metrics
from flowdeck.services.core.storage import Storage, open_storage
from flowdeck.services.pipelines.catalog import Catalog, CatalogFiles
from flowdeck.settings import Settings


@dataclass
class AppContext:
    """The long-lived objects shared by the API and the worker of one process."""

    settings: Settings
    db: Database
    backends: Registry
    metrics: Metrics
    storage: Storage | None = None  # None: opened on first use (services.datasets.storage_of)
    # The pipeline catalog (see the ``catalog`` property); None: the settings' folder, on first use.
    _catalog: Catalog | CatalogFiles | None = field(default=None, repr=False)
    _run_queued: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # New runs' group commit (services.runs builds it on first use; services.group_commit).
    run_intake: GroupCommit[Any] | None = field(default=None, repr=False)
    # Engine calls of the API's dispatch-now (services.dispatch_now); threads made on first use.
    inline_engine_calls: TrackedPool = field(default_factory=lambda: TrackedPool(4), repr=False)

    @classmethod
    def create(cls, settings: Settings, *, catalog_files: CatalogFiles | None = None) -> AppContext:
        """Without ``catalog_files`` the catalog is loaded here: a broken pipeline file stops
        start-up naming the file and field. With them (read and checked at start, as
        ``flowdeck api`` does in a child process) they are parsed on first use."""
        return cls(
            settings=settings,
            db=Database(settings),
            backends=Registry(settings),
            metrics=Metrics(),
            storage=open_storage(settings),
            _catalog=catalog_files or Catalog.from_settings(settings),
        )

    @cached_property
    def runs_dir(self) -> Path:
        """Where runs' folders live, resolved once (resolving walks the path: ~40 µs a submit)."""
        return self.settings.resolved_runs_dir

    @property
    def catalog(self) -> Catalog:
        """The pipelines, loaded once."""
        if not isinstance(self._catalog, Catalog):
            files = self._catalog or CatalogFiles.read(self.settings.pipelines_dir)
            self._catalog = files.load()
        return self._catalog

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def on_run_queued(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each run this process stores is committed; returns the unsubscribe."""
        self._run_queued.append(listener)
        return lambda: self._run_queued.remove(listener)

    def run_queued(self) -> None:
        """A new run is committed (services.runs calls it): tell the listeners (an idle worker)."""
        for listener in list(self._run_queued):
            listener()

    async def close(self) -> None:
        """Drain dispatch-now (a dispatch cut short stays leased: a worker takes it over), then the database."""
        await self.inline_engine_calls.aclose(self.settings.dispatch_timeout_seconds)
        await self.db.dispose()
