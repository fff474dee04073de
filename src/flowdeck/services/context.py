"""What every use case needs: settings, the database and the backends."""

from __future__ import annotations

from dataclasses import dataclass

from flowdeck.backends.registry import Registry
from flowdeck.db.engine import Database
from flowdeck.services.metrics import Metrics
from flowdeck.settings import Settings


@dataclass
class Services:
    """The long-lived objects shared by the API and the worker of one process."""

    settings: Settings
    db: Database
    backends: Registry
    metrics: Metrics

    @classmethod
    def create(cls, settings: Settings) -> Services:
        return cls(settings=settings, db=Database(settings), backends=Registry(settings), metrics=Metrics())

    async def close(self) -> None:
        await self.db.dispose()
