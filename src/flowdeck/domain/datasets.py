"""A stored dataset as every layer above ``db/`` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """One datasets row (built by ``db.datasets.record_of``, which reads a NULL ``extra`` as empty).

    A dataset is a reference (``uri`` or ``galaxy_dataset_id``) or bytes flowdeck holds
    (``storage_key``); ``extra["pending_upload"]`` is true until a pre-signed upload's bytes arrive.
    """

    id: str
    name: str
    research_group: str | None
    owner: str | None
    uri: str | None
    galaxy_dataset_id: str | None
    storage_key: str | None
    checksum: str | None
    size: int | None
    media_type: str | None
    extra: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def pending_upload(self) -> bool:
        """True while the bytes of a pre-signed upload have not arrived."""
        return bool(self.extra.get("pending_upload"))
