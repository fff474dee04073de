"""The filters a list takes, as the doors (routes, CLI) build them; the queries are in ``db/``."""

from __future__ import annotations

from flowdeck.db.datasets import DatasetFilter
from flowdeck.db.requests import RequestFilter
from flowdeck.db.runs import RunFilter

__all__ = ["DatasetFilter", "RequestFilter", "RunFilter"]
