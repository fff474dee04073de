"""What every use case needs: settings, the database and the backends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flowdeck.backends.registry import Registry
from flowdeck.db.engine import Database
from flowdeck.services.metrics import Metrics
from flowdeck.services.pipelines import Catalog
from flowdeck.services.storage import Storage, open_storage
from flowdeck.settings import Settings


@dataclass
class Services:
    """The long-lived objects shared by the API and the worker of one process."""

    settings: Settings
    db: Database
    backends: Registry
    metrics: Metrics
    # Loaded once at start; a broken pipeline file stops start-up naming the file and field.
    catalog: Catalog = field(default_factory=Catalog.load)
    storage: Storage | None = None  # None: opened on first use (services.datasets.storage_of)
    _run_queued: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            db=Database(settings),
            backends=Registry(settings),
            metrics=Metrics(),
            catalog=Catalog.from_settings(settings),
            storage=open_storage(settings),
        )

    def on_run_queued(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each run this process stores is committed; returns the unsubscribe."""
        self._run_queued.append(listener)
        return lambda: self._run_queued.remove(listener)

    def run_queued(self) -> None:
        """A new run is committed (services.runs calls it): tell the listeners (an idle worker)."""
        for listener in list(self._run_queued):
            listener()

    async def close(self) -> None:
        await self.db.dispose()
